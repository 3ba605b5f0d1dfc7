//! The nested subcommands of `define`, `analysis`, `pack` and the suites of
//! `eval`: their flags, defined once (part of `args`).

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Subcommand;
use quarry_types::DefinitionKind;

/// The suites `quarry eval` runs.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum EvalKind {
    /// DABench's public dev set (InfiAgent-DABench).
    Dabench,
    /// A suite file in Quarry's YAML/JSON format.
    Suite,
}

#[derive(Subcommand)]
pub(crate) enum DefineCmd {
    /// A named measure: one SQL expression over TABLE's columns, checked on the data.
    Metric {
        name: String,
        /// e.g. `pct(sum(positive), sum(tested))`.
        expr: String,
        #[arg(long)]
        table: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// A word or period and what it means, e.g. `Q2 "April to June"`.
    Term { name: String, meaning: String },
    /// What a column holds: `TABLE.COLUMN "description"`.
    Column { column: String, description: String },
    /// Another word for a value: `KMC "Kano Municipal" --column TABLE.COLUMN`.
    Synonym {
        word: String,
        value: String,
        #[arg(long)]
        column: String,
    },
    /// A question with the query a person checked as answering it right.
    Verified {
        question: String,
        #[arg(long, allow_hyphen_values = true)]
        sql: String,
    },
    /// List the definitions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a definition by kind and key (name, TABLE.COLUMN, word or question).
    Remove {
        #[arg(value_parser = definition_kinds())]
        kind: DefinitionKind,
        key: String,
    },
}

/// The kinds of definition, listed from [`DefinitionKind::ALL`].
fn definition_kinds() -> impl TypedValueParser<Value = DefinitionKind> {
    let values = DefinitionKind::ALL.map(|k| PossibleValue::new(k.as_str()).help(k.describe()));
    PossibleValuesParser::new(values).map(|s| s.parse::<DefinitionKind>().unwrap_or(DefinitionKind::Term))
}

#[derive(Subcommand)]
pub(crate) enum AnalysisCmd {
    /// Save an answer (`quarry ask … --json > answer.json`) as analysis NAME.
    /// Literals the query compares columns with are proposed as parameters;
    /// confirm each with --param COLUMN[=NAME].
    Save {
        name: String,
        #[arg(long, value_name = "FILE")]
        answer: PathBuf,
        #[arg(long = "param", value_name = "COLUMN[=NAME]")]
        params: Vec<String>,
    },
    /// The saved analyses.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One analysis: its query, parameters and runs.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Run an analysis now (no model), with parameters `--param NAME=VALUE`.
    Run {
        name: String,
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove an analysis and its runs.
    Remove { name: String },
}

#[derive(Subcommand)]
pub(crate) enum PackCmd {
    /// The packs Quarry ships.
    List,
    /// A pack's roles and analyses (a shipped pack's name, or a pack file).
    Show { pack: String },
    /// Propose which columns of TABLE play the pack's roles; with --yes,
    /// save that binding, create the pack's analyses and run them.
    Bind {
        pack: String,
        #[arg(long)]
        table: String,
        /// Change a role's columns: ROLE=COLUMN[,COLUMN…] (ROLE= unbinds it).
        #[arg(long = "role", value_name = "ROLE=COLUMNS")]
        roles: Vec<String>,
        /// Confirm: save the binding and run the analyses.
        #[arg(long)]
        yes: bool,
    },
    /// Run a bound pack's analyses again.
    Run {
        pack: String,
        #[arg(long)]
        table: String,
        #[arg(long)]
        json: bool,
    },
}
