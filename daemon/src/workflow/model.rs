//! The subset of the GitHub Actions workflow syntax `ephemerd run` understands, parsed with serde. Fields
//! it does not act on are accepted (a real workflow has many) and reported by the planner where they
//! change what a job does.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_yaml_ng::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct Workflow {
    pub name: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, Scalar>,
    #[serde(default)]
    pub defaults: Defaults,
    pub jobs: IndexMap<String, Job>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Defaults {
    #[serde(default)]
    pub run: RunDefaults,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunDefaults {
    pub shell: Option<String>,
    #[serde(rename = "working-directory")]
    pub working_directory: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub name: Option<String>,
    #[serde(rename = "runs-on")]
    pub runs_on: Option<Value>,
    #[serde(default)]
    pub env: IndexMap<String, Scalar>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(rename = "timeout-minutes")]
    pub timeout_minutes: Option<f64>,
    #[serde(rename = "if")]
    pub if_: Option<Scalar>,
    pub uses: Option<String>,
    pub container: Option<Value>,
    pub services: Option<Value>,
    pub strategy: Option<Value>,
    pub needs: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub id: Option<String>,
    pub name: Option<String>,
    pub run: Option<String>,
    pub uses: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, Scalar>,
    pub shell: Option<String>,
    #[serde(rename = "working-directory")]
    pub working_directory: Option<String>,
    #[serde(rename = "if")]
    pub if_: Option<Scalar>,
    #[serde(rename = "continue-on-error", default)]
    pub continue_on_error: Option<Scalar>,
    #[serde(rename = "timeout-minutes")]
    pub timeout_minutes: Option<f64>,
}

/// A YAML scalar used as a string (env values may be written as numbers or booleans).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Scalar(s)),
            Value::Bool(b) => Ok(Scalar(b.to_string())),
            Value::Number(n) => Ok(Scalar(n.to_string())),
            Value::Null => Ok(Scalar(String::new())),
            _ => Err(serde::de::Error::custom("expected a string, number or boolean")),
        }
    }
}

/// Parses workflow YAML; errors carry the line and column.
pub fn parse(text: &str) -> Result<Workflow, String> {
    serde_yaml_ng::from_str::<Workflow>(text).map_err(|e| {
        let msg = e.to_string();
        // serde_yaml_ng appends " at line L column C" itself when it knows the place.
        match e.location() {
            Some(l) if !msg.contains("line") => format!("line {} column {}: {msg}", l.line(), l.column()),
            _ => msg,
        }
    })
}
