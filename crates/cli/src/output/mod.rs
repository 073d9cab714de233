//! How results reach stdout: aligned tables for people (status in words, coloured only on a
//! terminal), or the protobuf canonical JSON mapping for scripts (`-o json`). Messages for
//! people that are not the result (hints, what was written where) go to stderr.

pub mod json;
pub mod style;
pub mod table;
pub mod words;

use std::io::Write;

/// `-o`: who reads the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The protobuf JSON mapping of the response (grpcurl's field and enum names, defaults
    /// included); `watch`: one object per line.
    Json,
}

/// Where and how a command prints its result.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub format: Format,
    /// Colour in tables (a terminal, and NO_COLOR unset).
    pub colour: bool,
}

impl Output {
    /// The output for this process's stdout and environment.
    pub fn detect(format: Format) -> Output {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR");
        let colour = style::colour_wanted(std::io::stdout().is_terminal(), no_color.as_deref());
        Output { format, colour }
    }

    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints `message` as indented JSON.
    pub fn json<M: json::Proto>(&self, message: &M) -> anyhow::Result<()> {
        print(&format!("{}\n", json::render(message, true)?))
    }

    /// Prints `message` as one line of JSON, flushed at once.
    pub fn json_line<M: json::Proto>(&self, message: &M) -> anyhow::Result<()> {
        print(&format!("{}\n", json::render(message, false)?))
    }

    /// Prints a rendered table (nothing for no rows but the note).
    pub fn table(&self, table: &table::Table, empty_note: &str) -> anyhow::Result<()> {
        if table.is_empty() {
            eprintln!("{empty_note}");
            return Ok(());
        }
        print(&table.render(self.colour))
    }
}

/// Writes `text` to stdout and flushes it (a closed pipe is an `io::Error` the caller sees).
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
