//! `fleet_plot`: draws the fleet benchmark's results (the JSON `fleet_bench` writes)
//! as one PNG, memory per agent and command delivery p99 against the fleet size.
//!
//! ```text
//! fleet_plot --input results.json --output fleet.png
//! ```
//!
//! Text needs DejaVu Sans (Debian: fonts-dejavu-core), or any TrueType font named
//! by `DOCKFLARE_PLOT_FONT`.

// Shared with fleet_bench, which uses the parts this binary does not (writing,
// merging, percentiles).
#[allow(dead_code)]
mod plot;
#[allow(dead_code)]
mod results;

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(about = "Draws fleet_bench's results as a PNG")]
struct Args {
    /// The results JSON written by fleet_bench.
    #[arg(long)]
    input: PathBuf,
    /// The PNG to write (replaced if it exists).
    #[arg(long)]
    output: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let results = results::Results::read(&args.input)?;
    plot::draw(&results, &args.output)
        .with_context(|| format!("drawing {} into {}", args.input.display(), args.output.display()))?;
    let size = std::fs::metadata(&args.output).with_context(|| format!("reading {}", args.output.display()))?.len();
    println!("{} ({} × {}, {size} bytes)", args.output.display(), plot::WIDTH, plot::HEIGHT);
    Ok(())
}
