//! Percentages as Istio writes them (`{"value": 12.5}`), decided with an honest random draw.

use serde::{Deserialize, Deserializer};

/// One million: percentages are kept as parts per million, like Envoy's `FractionalPercent`.
pub const MILLION: u32 = 1_000_000;

/// A probability in [0, 100] percent, stored as parts per million.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentage {
    ppm: u32,
}

impl Percentage {
    pub const ALWAYS: Percentage = Percentage { ppm: MILLION };
    pub const NEVER: Percentage = Percentage { ppm: 0 };

    /// From a percent value; refuses NaN, infinities and values outside [0, 100].
    pub fn from_percent(value: f64) -> Result<Self, String> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err(format!("percentage {value} is out of range; expected a number in [0, 100]"));
        }
        Ok(Self { ppm: (value * 10_000.0).round() as u32 })
    }

    pub fn ppm(self) -> u32 {
        self.ppm
    }

    /// Decides one request: true with this probability. Draws a random number only when needed.
    pub fn roll(self, rng: &mut dyn crate::host::Random) -> bool {
        match self.ppm {
            0 => false,
            MILLION => true,
            ppm => rng.below(MILLION) < ppm,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PercentageJson {
    value: f64,
}

/// `{"value": 12.5}`, as in Istio's `Percent`.
impl<'de> Deserialize<'de> for Percentage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = PercentageJson::deserialize(deserializer)?;
        Percentage::from_percent(json.value).map_err(serde::de::Error::custom)
    }
}

impl Default for Percentage {
    fn default() -> Self {
        Self::ALWAYS
    }
}

#[cfg(test)]
#[path = "tests/percent.rs"]
mod tests;
