//! The privacy modes: what of the data may reach the model. The policy that
//! applies a mode to each view the model gets lives in `quarry-agent`.

use serde::{Deserialize, Serialize};

/// What may reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    /// Schema and counts only; no cell value in context, errors or results.
    #[default]
    Strict,
    /// Adds a few sample rows per table to the context.
    Sample,
    /// The model also reads (bounded) results.
    Full,
}

impl Privacy {
    /// Every mode, strictest first: the CLI, the API and the page list these.
    pub const ALL: [Privacy; 3] = [Privacy::Strict, Privacy::Sample, Privacy::Full];

    /// What the mode lets the model see, in a few words for a menu.
    pub fn describe(self) -> &'static str {
        match self {
            Privacy::Strict => "no values to the model",
            Privacy::Sample => "a few rows",
            Privacy::Full => "model reads results",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Strict => "strict",
            Privacy::Sample => "sample",
            Privacy::Full => "full",
        }
    }
}

impl std::str::FromStr for Privacy {
    type Err = String;
    fn from_str(s: &str) -> Result<Privacy, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "strict" => Ok(Privacy::Strict),
            "sample" => Ok(Privacy::Sample),
            "full" => Ok(Privacy::Full),
            other => Err(format!("unknown privacy mode '{other}': use strict, sample or full")),
        }
    }
}
