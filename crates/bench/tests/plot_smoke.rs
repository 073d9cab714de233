//! fleet_plot draws a sweep's results: a Results file with realistic figures for the
//! master on SQLite and the floor at 100 to 10,000 agents becomes a PNG of the
//! expected size with the lines in it; empty results and a missing font are errors.

// The model fleet_bench writes and fleet_plot reads, compiled here too so that the
// test's file is the real thing.
#[allow(dead_code)]
#[path = "../src/results.rs"]
mod results;

use anyhow::{ensure, Context, Result};
use results::{Percentiles, Results, Run, Server};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 560;
/// The colour of the master on SQLite, and the floor's.
const SQLITE_BLUE: [u8; 3] = [31, 119, 180];
const FLOOR_GREEN: [u8; 3] = [44, 160, 44];

fn percentiles(p99_ms: f64, count: usize) -> Percentiles {
    Percentiles { count, p50_ms: p99_ms * 0.45, p95_ms: p99_ms * 0.8, p99_ms, max_ms: p99_ms * 1.4 }
}

/// A sweep as fleet_bench would write it: per agent, the master costs ~60–90 KiB and
/// the floor ~20–30; one command takes a few ms, 64 in flight a few tens.
fn sweep() -> Results {
    let mut results = Results::new("3e1f77f", "2 cores, 24 GiB");
    let servers = [
        (
            Server::Dockflare,
            Some("sqlite"),
            31_500u64,
            [92u64, 71, 63, 61],
            [1.9, 2.2, 3.6, 5.3],
            [9.1, 12.4, 24.8, 41.0],
        ),
        (Server::Floor, None, 6_200, [31, 24, 22, 22], [0.41, 0.46, 0.62, 0.83], [2.4, 3.1, 4.3, 6.2]),
    ];
    for (server, database, idle, per_agent, sequential, concurrent) in servers {
        for (i, agents) in [100usize, 1_000, 5_000, 10_000].into_iter().enumerate() {
            results.runs.push(Run {
                server,
                database: database.map(str::to_owned),
                agents,
                connect_seconds: agents as f64 / 500.0,
                rss_idle_kib: idle,
                rss_connected_kib: idle + per_agent[i] * agents as u64,
                events_per_second: (server == Server::Dockflare).then_some(38_000.0),
                commands_sequential: Some(percentiles(sequential[i], 200)),
                // A gap: the concurrent round was not run at 5,000, so that point is left out.
                commands_concurrent: (agents != 5_000).then(|| percentiles(concurrent[i], 640)),
                command_concurrency: 64,
                commands_under_load: false,
            });
        }
    }
    results
}

fn fleet_plot(input: &Path, output: &Path, font: Option<&str>) -> Result<Output> {
    let binary = dockflare_testsupport::workspace_binary("fleet_plot")?;
    let mut command = Command::new(&binary);
    command.arg("--input").arg(input).arg("--output").arg(output);
    if let Some(font) = font {
        command.env("DOCKFLARE_PLOT_FONT", font);
    }
    command.output().with_context(|| format!("running {}", binary.display()))
}

fn failure(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn fleet_plot_draws_a_sweep_as_a_png() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("results.json");
    let output = dir.path().join("fleet.png");
    sweep().write(&input)?;

    let run = fleet_plot(&input, &output, None)?;
    ensure!(run.status.success(), "fleet_plot failed: {}", failure(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    ensure!(stdout.contains(&output.display().to_string()), "the output path is not printed: {stdout}");

    let bytes = std::fs::read(&output).with_context(|| format!("reading {}", output.display()))?;
    ensure!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "no PNG signature");
    // The first chunk is IHDR: its length, its name, then width and height, big-endian.
    ensure!(bytes.len() > 24 && &bytes[12..16] == b"IHDR", "no IHDR chunk first");
    let width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    ensure!((width, height) == (WIDTH, HEIGHT), "the picture is {width} × {height}, not {WIDTH} × {HEIGHT}");

    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes)).read_info()?;
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels)?;
    ensure!(frame.color_type == png::ColorType::Rgb, "expected RGB, got {:?}", frame.color_type);
    let pixels: Vec<[u8; 3]> = pixels[..frame.buffer_size()].chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    ensure!(colours.len() > 50, "only {} colours: a blank picture?", colours.len());
    let white = pixels.iter().filter(|p| **p == [255, 255, 255]).count();
    ensure!(white > pixels.len() / 2, "the background is not white ({white} of {} pixels)", pixels.len());
    for (name, colour) in [("the master on SQLite", SQLITE_BLUE), ("the floor", FLOOR_GREEN)] {
        let count = pixels.iter().filter(|p| **p == colour).count();
        // Two panels' lines, points and the legends: well over a thousand pixels each.
        ensure!(count > 1_000, "{name}'s colour {colour:?} covers only {count} pixels");
    }
    // Written through a temporary file: nothing else is left beside it.
    let left: Vec<_> =
        std::fs::read_dir(dir.path())?.map(|entry| entry.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    ensure!(left.len() == 2, "stray files beside the picture: {left:?}");
    Ok(())
}

#[test]
fn a_single_run_is_drawn_and_no_runs_are_an_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("results.json");
    let output = dir.path().join("fleet.png");

    let mut one = sweep();
    one.runs.truncate(1);
    one.runs[0].commands_concurrent = None;
    one.write(&input)?;
    let run = fleet_plot(&input, &output, None)?;
    ensure!(run.status.success(), "fleet_plot failed on one run: {}", failure(&run));

    let mut none = sweep();
    none.runs.clear();
    none.write(&input)?;
    let run = fleet_plot(&input, &output, None)?;
    ensure!(!run.status.success(), "fleet_plot drew no runs: {}", failure(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    ensure!(stderr.contains("no runs"), "unclear error: {stderr}");
    Ok(())
}

#[test]
fn a_missing_font_is_named_in_the_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("results.json");
    let output = dir.path().join("fleet.png");
    sweep().write(&input)?;
    let missing = dir.path().join("NoSuchFont.ttf");
    let run = fleet_plot(&input, &output, missing.to_str())?;
    ensure!(!run.status.success(), "fleet_plot drew without its font: {}", failure(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    ensure!(stderr.contains("DOCKFLARE_PLOT_FONT") && stderr.contains("NoSuchFont.ttf"), "unclear error: {stderr}");
    ensure!(!output.exists(), "a picture was written anyway");
    Ok(())
}
