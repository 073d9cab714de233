//! The fleet benchmark's picture: one PNG of two panels drawn from [`Results`].
//!
//! - Left: what each connected agent costs the server's memory, (RSS with every agent
//!   connected − RSS idle) / agents, against the fleet size.
//! - Right: command delivery p99 against the fleet size, one command at a time (solid
//!   line, circles) and N in flight (dashed line, triangles).
//!
//! Both panels have a log-scale x axis ticked at the sizes measured, and a line per
//! (server, database) in the same colour in both panels; a legend under each panel
//! and a caption with the date, the commit and the machine. A missing figure leaves
//! its point out; a panel with no figures at all says so.
//!
//! Text needs a font read at run time, DejaVu Sans or the one [`text::FONT_ENV`] names
//! (see [`text`]): plotters' `ab_glyph` feature has none of its own and links no system
//! font library. The picture is drawn into a buffer and written with the `png` crate
//! through a temporary file and a rename.
//!
//! A binary includes it beside the model, `mod results; mod plot;` at its root (it
//! reads `crate::results`); `plot/text.rs` comes with it.

mod text;

use crate::results::{Results, Run, Server};
use anyhow::{anyhow, bail, ensure, Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::io::{BufWriter, Write};
use std::path::Path;
use text::{Canvas, Fonts, FAMILY};

/// The picture's size in pixels.
pub const WIDTH: u32 = 1400;
pub const HEIGHT: u32 = 560;

const MEMORY_TITLE: &str = "Master memory per connected agent";
const LATENCY_TITLE: &str = "Command delivery, p99";
const CAPTION_HEIGHT: u32 = 30;
const LEGEND_ROW_HEIGHT: u32 = 24;
const INK: RGBColor = RGBColor(40, 40, 40);
const MUTED: RGBColor = RGBColor(110, 110, 110);
const GRID: RGBColor = RGBColor(222, 222, 222);
const FAINT_GRID: RGBColor = RGBColor(242, 242, 242);
/// Colours for a (server, database) beyond the three expected.
const SPARE_COLOURS: [RGBColor; 4] =
    [RGBColor(148, 103, 189), RGBColor(140, 86, 75), RGBColor(227, 119, 194), RGBColor(188, 189, 34)];

/// Draws `results` as a PNG of [`WIDTH`] × [`HEIGHT`] at `output`, replacing any file
/// there. Fails, drawing nothing, when there are no runs or none has a figure to draw,
/// or when no font can be found.
pub fn draw(results: &Results, output: &Path) -> Result<()> {
    ensure!(!results.runs.is_empty(), "the results hold no runs to draw");
    let lines = Line::collect(results);
    let has_memory = lines.iter().any(Line::has_memory);
    let has_sequential = lines.iter().any(|line| line.has_latency(Mode::Sequential));
    let has_concurrent = lines.iter().any(|line| line.has_latency(Mode::Concurrent));
    let has_latency = has_sequential || has_concurrent;
    ensure!(
        has_memory || has_latency,
        "none of the {} runs has a memory or command latency figure to draw (or a positive agent count)",
        results.runs.len()
    );
    let fonts = Fonts::get()?;

    let mut pixels = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let root = Canvas::new(&mut pixels, (WIDTH, HEIGHT), fonts).into_drawing_area();
        root.fill(&WHITE)?;
        let (body, caption) = root.split_vertically(HEIGHT - CAPTION_HEIGHT);
        let (left, right) = body.split_horizontally(WIDTH / 2);

        let memory_note = Entry::new(Glyph::None, "(RSS all connected − RSS idle) ÷ agents".to_owned());
        draw_panel(
            &left,
            MEMORY_TITLE,
            "no memory figures in these results",
            &[key(&lines, Line::has_memory), vec![memory_note]],
            |area| draw_memory(area, &lines),
            has_memory,
        )?;

        let mut mode_entries = Vec::new();
        if has_sequential {
            mode_entries.push(Entry::new(Glyph::Solid(INK), "one at a time".to_owned()));
        }
        if has_concurrent {
            mode_entries.push(Entry::new(Glyph::Dashed(INK), concurrency_label(&results.runs)));
        }
        if let Some(note) = load_note(&results.runs) {
            mode_entries.push(Entry::new(Glyph::None, note));
        }
        draw_panel(
            &right,
            LATENCY_TITLE,
            "no command latency figures in these results",
            &[
                key(&lines, |line| line.has_latency(Mode::Sequential) || line.has_latency(Mode::Concurrent)),
                mode_entries,
            ],
            |area| draw_latency(area, &lines),
            has_latency,
        )?;

        let text = format!(
            "DockFlare fleet benchmark  ·  {}  ·  commit {}  ·  {}",
            results.date, results.commit, results.machine
        );
        caption.draw(&Text::new(
            text,
            ((WIDTH / 2) as i32, (CAPTION_HEIGHT / 2) as i32),
            font(14).color(&MUTED).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        root.present()?;
    }
    write_png(&pixels, output)
}

/// One line per panel: a (server, database) and its runs, by fleet size.
struct Line<'a> {
    label: String,
    colour: RGBColor,
    runs: Vec<&'a Run>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Sequential,
    Concurrent,
}

impl<'a> Line<'a> {
    /// A line per (server, database) in `results`: the master on SQLite, then on
    /// PostgreSQL, then any other database, then the floor.
    fn collect(results: &'a Results) -> Vec<Line<'a>> {
        let mut keys: Vec<(Server, Option<&str>)> =
            results.runs.iter().map(|run| (run.server, run.database.as_deref())).collect();
        keys.sort_by_key(|&(server, database)| (server, database_rank(database), database));
        keys.dedup();
        let mut spare = SPARE_COLOURS.iter().cycle();
        keys.into_iter()
            .map(|(server, database)| {
                let colour = match (server, database) {
                    (Server::Dockflare, Some("sqlite")) => RGBColor(31, 119, 180),
                    (Server::Dockflare, Some("postgres")) => RGBColor(235, 120, 20),
                    (Server::Floor, None) => RGBColor(44, 160, 44),
                    _ => spare.next().copied().unwrap_or(MUTED),
                };
                let label = match (server, database) {
                    (Server::Dockflare, Some(database)) => format!("DockFlare, {}", database_name(database)),
                    (Server::Dockflare, None) => "DockFlare".to_owned(),
                    (Server::Floor, None) => "floor (bare tonic)".to_owned(),
                    (Server::Floor, Some(database)) => format!("floor, {}", database_name(database)),
                };
                let mut runs: Vec<&Run> = results
                    .runs
                    .iter()
                    .filter(|run| run.server == server && run.database.as_deref() == database && run.agents > 0)
                    .collect();
                runs.sort_by_key(|run| run.agents);
                Line { label, colour, runs }
            })
            .collect()
    }

    fn has_memory(&self) -> bool {
        !self.memory().is_empty()
    }

    fn has_latency(&self, mode: Mode) -> bool {
        !self.latency(mode).is_empty()
    }

    fn memory(&self) -> Vec<(f64, f64)> {
        self.points(|run| Some(run.rss_per_agent_kib()))
    }

    fn latency(&self, mode: Mode) -> Vec<(f64, f64)> {
        self.points(|run| match mode {
            Mode::Sequential => run.commands_sequential.map(|p| p.p99_ms),
            Mode::Concurrent => run.commands_concurrent.map(|p| p.p99_ms),
        })
        .into_iter()
        .filter(|&(_, ms)| ms > 0.0)
        .collect()
    }

    fn points(&self, value: impl Fn(&Run) -> Option<f64>) -> Vec<(f64, f64)> {
        self.runs
            .iter()
            .filter_map(|run| value(run).filter(|v| v.is_finite()).map(|v| (run.agents as f64, v)))
            .collect()
    }
}

/// A panel's key: the lines it draws, by colour.
fn key<'a>(lines: &[Line<'a>], drawn: impl Fn(&Line<'a>) -> bool) -> Vec<Entry> {
    lines
        .iter()
        .filter(|line| drawn(line))
        .map(|line| Entry::new(Glyph::Solid(line.colour), line.label.clone()))
        .collect()
}

fn database_rank(database: Option<&str>) -> u8 {
    match database {
        Some("sqlite") => 0,
        Some("postgres") => 1,
        _ => 2,
    }
}

fn database_name(database: &str) -> &str {
    match database {
        "sqlite" => "SQLite",
        "postgres" => "PostgreSQL",
        other => other,
    }
}

/// "64 in flight", or "N in flight" when the runs differ.
fn concurrency_label(runs: &[Run]) -> String {
    let mut levels: Vec<usize> =
        runs.iter().filter(|run| run.commands_concurrent.is_some()).map(|run| run.command_concurrency).collect();
    levels.sort_unstable();
    levels.dedup();
    match levels.as_slice() {
        [level] => format!("{level} in flight"),
        _ => "N in flight".to_owned(),
    }
}

/// Whether the commands were timed with events flowing: said once for all runs.
fn load_note(runs: &[Run]) -> Option<String> {
    let timed: Vec<&Run> =
        runs.iter().filter(|run| run.commands_sequential.is_some() || run.commands_concurrent.is_some()).collect();
    if timed.is_empty() {
        None
    } else if timed.iter().all(|run| run.commands_under_load) {
        Some("(while events flowed)".to_owned())
    } else if timed.iter().any(|run| run.commands_under_load) {
        Some("(some while events flowed)".to_owned())
    } else {
        Some("(no event load)".to_owned())
    }
}

type Area<'a> = DrawingArea<Canvas<'a>, plotters::coord::Shift>;

/// A panel: the chart above, its legend rows below. With no figures to draw, the
/// panel keeps its title and says so instead of drawing empty axes.
fn draw_panel<'a>(
    area: &Area<'a>,
    title: &str,
    empty: &str,
    legend: &[Vec<Entry>],
    chart: impl FnOnce(&Area<'a>) -> Result<()>,
    has_data: bool,
) -> Result<()> {
    let rows = legend_rows(area, legend)?;
    let legend_height = LEGEND_ROW_HEIGHT * rows.len() as u32 + 6;
    let (width, height) = area.dim_in_pixel();
    let (plot, legend_area) = area.split_vertically(height.saturating_sub(legend_height));
    if has_data {
        chart(&plot)?;
        draw_legend(&legend_area, &rows)?;
    } else {
        // Where a chart's caption would be.
        let plot = plot.margin(12, 0, 0, 0).titled(title, bold(19).color(&INK))?;
        let (_, plot_height) = plot.dim_in_pixel();
        plot.draw(&Text::new(
            empty,
            ((width / 2) as i32, (plot_height / 2) as i32),
            font(16).color(&MUTED).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    Ok(())
}

fn draw_memory(area: &Area<'_>, lines: &[Line<'_>]) -> Result<()> {
    let points: Vec<(f64, f64)> = lines.iter().flat_map(Line::memory).collect();
    let x_axis = agent_axis(&points)?;
    let (low, high) = points.iter().fold((0.0f64, 0.0f64), |(low, high), &(_, v)| (low.min(v), high.max(v)));
    // Head room above the highest point; below zero only if something shrank.
    let high = if high > 0.0 { high * 1.12 } else { 1.0 };
    let low = if low < 0.0 { low * 1.12 } else { 0.0 };
    let mut chart = chart_builder(area, MEMORY_TITLE).build_cartesian_2d(x_axis, low..high)?;
    chart
        .configure_mesh()
        .x_desc("agents connected (log scale)")
        .y_desc("RSS per agent (KiB)")
        .x_label_formatter(&|agents| thousands(*agents))
        .y_label_formatter(&|kib| plain_number(*kib))
        .y_labels(8)
        .y_max_light_lines(1)
        .bold_line_style(GRID)
        .light_line_style(FAINT_GRID)
        .axis_style(MUTED)
        .label_style(font(14).color(&INK))
        .axis_desc_style(font(15).color(&INK))
        .draw()?;
    for line in lines {
        draw_line(&mut chart, line.memory(), line.colour, Mode::Sequential)?;
    }
    Ok(())
}

fn draw_latency(area: &Area<'_>, lines: &[Line<'_>]) -> Result<()> {
    let points: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|line| line.latency(Mode::Sequential).into_iter().chain(line.latency(Mode::Concurrent)))
        .collect();
    let x_axis = agent_axis(&points)?;
    let (low, high) = span(points.iter().map(|&(_, ms)| ms)).ok_or_else(|| anyhow!("no latency to draw"))?;
    let (low, high) = widen_to_a_decade(low / 1.4, high * 1.4);
    let (bold, faint) = log_ticks(low, high);
    let y_axis = (low..high).log_scale().with_key_points(bold).with_light_points(faint);
    let mut chart = chart_builder(area, LATENCY_TITLE).build_cartesian_2d(x_axis, y_axis)?;
    chart
        .configure_mesh()
        .x_desc("agents connected (log scale)")
        .y_desc("p99 latency (ms, log scale)")
        .x_label_formatter(&|agents| thousands(*agents))
        .y_label_formatter(&|ms| plain_number(*ms))
        .bold_line_style(GRID)
        .light_line_style(FAINT_GRID)
        .axis_style(MUTED)
        .label_style(font(14).color(&INK))
        .axis_desc_style(font(15).color(&INK))
        .draw()?;
    for line in lines {
        draw_line(&mut chart, line.latency(Mode::Sequential), line.colour, Mode::Sequential)?;
        draw_line(&mut chart, line.latency(Mode::Concurrent), line.colour, Mode::Concurrent)?;
    }
    Ok(())
}

fn chart_builder<'a, 'b>(area: &'a Area<'b>, title: &'a str) -> ChartBuilder<'a, 'b, Canvas<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, bold(19).color(&INK))
        .margin_top(12)
        .margin_left(16)
        .margin_right(28)
        .margin_bottom(4)
        .x_label_area_size(48)
        .y_label_area_size(72);
    builder
}

/// A line through `points`, solid with circles or dashed with triangles.
fn draw_line<'a, Y>(
    chart: &mut ChartContext<'a, Canvas<'a>, Cartesian2d<XAxis, Y>>,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    mode: Mode,
) -> Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    if points.is_empty() {
        return Ok(());
    }
    let stroke = colour.stroke_width(2);
    match mode {
        Mode::Sequential => {
            chart.draw_series(LineSeries::new(points.iter().copied(), stroke))?;
            chart.draw_series(points.iter().map(|&point| Circle::new(point, 4, colour.filled())))?;
        }
        Mode::Concurrent => {
            chart.draw_series(DashedLineSeries::new(points.iter().copied(), 7, 5, stroke))?;
            chart.draw_series(points.iter().map(|&point| TriangleMarker::new(point, 6, colour.filled())))?;
        }
    }
    Ok(())
}

type XAxis = plotters::coord::combinators::WithKeyPoints<plotters::coord::combinators::LogCoord<f64>>;

/// A log-scale axis of agents, ticked at the fleet sizes measured (or at 1, 2, 5 × 10ⁿ
/// when there are too many to label), with faint lines at each 10ⁿ multiple.
fn agent_axis(points: &[(f64, f64)]) -> Result<XAxis> {
    let mut sizes: Vec<f64> = points.iter().map(|&(agents, _)| agents).filter(|agents| *agents > 0.0).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let (low, high) = match (sizes.first(), sizes.last()) {
        (Some(&low), Some(&high)) => (low, high),
        _ => bail!("no fleet sizes to draw"),
    };
    let (low, high) = if low == high { (low / 3.0, high * 3.0) } else { (low / 1.35, high * 1.35) };
    let (decades, faint) = log_ticks(low, high);
    let bold = if sizes.len() <= 8 { sizes } else { decades };
    let faint = faint.into_iter().filter(|v| !bold.contains(v)).collect::<Vec<_>>();
    Ok((low..high).log_scale().with_key_points(bold).with_light_points(faint))
}

/// The smallest and largest of `values`.
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |span, v| match span {
        None => Some((v, v)),
        Some((low, high)) => Some((low.min(v), high.max(v))),
    })
}

/// Widens `low..high` (both positive) evenly on a log scale until it spans a factor of
/// ten at least, so that it holds three 1-2-5 ticks.
fn widen_to_a_decade(low: f64, high: f64) -> (f64, f64) {
    let ratio = high / low;
    if ratio >= 10.0 {
        return (low, high);
    }
    let factor = (10.0 / ratio).sqrt();
    (low / factor, high * factor)
}

/// The 1, 2, 5 × 10ⁿ within `low..=high` (positive), and the other multiples of 10ⁿ.
fn log_ticks(low: f64, high: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut bold, mut faint) = (Vec::new(), Vec::new());
    if !(low > 0.0 && high >= low && high.is_finite()) {
        return (bold, faint);
    }
    let first = low.log10().floor() as i32;
    let last = high.log10().ceil() as i32;
    for exponent in first..=last {
        let decade = 10f64.powi(exponent);
        for multiple in 1..=9 {
            // Rounded to the decade's precision, so that 0.1 × 3 is 0.3.
            let value = round_to(decade * f64::from(multiple), exponent);
            if value < low || value > high {
                continue;
            }
            if matches!(multiple, 1 | 2 | 5) {
                bold.push(value);
            } else {
                faint.push(value);
            }
        }
    }
    (bold, faint)
}

fn round_to(value: f64, exponent: i32) -> f64 {
    if exponent >= 0 {
        return value.round();
    }
    let scale = 10f64.powi(-exponent);
    (value * scale).round() / scale
}

/// 10000 → "10,000".
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < -0.5 {
        out.insert(0, '−');
    }
    out
}

/// A tick label with no more decimals than it needs: 20, 2.5, 0.05.
fn plain_number(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let text = if value.abs() >= 1000.0 {
        thousands(value)
    } else {
        let decimals = (3 - value.abs().log10().floor() as i32).clamp(0, 6) as usize;
        let text = format!("{value:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    };
    text.replace('-', "−")
}

fn font(size: u32) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), f64::from(size), FontStyle::Normal)
}

/// Bold (FontDesc::style keeps the face it was made with, so not `font(size).style(..)`).
fn bold(size: u32) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), f64::from(size), FontStyle::Bold)
}

/// What a legend entry shows before its text.
#[derive(Clone, Copy)]
enum Glyph {
    Solid(RGBColor),
    Dashed(RGBColor),
    None,
}

#[derive(Clone)]
struct Entry {
    glyph: Glyph,
    text: String,
}

impl Entry {
    fn new(glyph: Glyph, text: String) -> Entry {
        Entry { glyph, text }
    }

    fn glyph_width(&self) -> i32 {
        match self.glyph {
            Glyph::None => 0,
            _ => 36,
        }
    }
}

const ENTRY_GAP: i32 = 26;

/// The legend's entries laid out in rows that fit `area`'s width: each given row
/// starts a new one, and wraps when too wide. Each entry comes with its text's width.
fn legend_rows(area: &Area<'_>, rows: &[Vec<Entry>]) -> Result<Vec<Vec<(Entry, i32)>>> {
    let (width, _) = area.dim_in_pixel();
    let room = width as i32 - 2 * ENTRY_GAP;
    let style = font(14).color(&INK);
    let mut laid = Vec::new();
    for row in rows {
        let mut current: Vec<(Entry, i32)> = Vec::new();
        let mut used = 0;
        for entry in row {
            let (text_width, _) = area.estimate_text_size(&entry.text, &style)?;
            let needed = entry.glyph_width() + text_width as i32 + ENTRY_GAP;
            if !current.is_empty() && used + needed > room {
                laid.push(std::mem::take(&mut current));
                used = 0;
            }
            used += needed;
            current.push((entry.clone(), text_width as i32));
        }
        if !current.is_empty() {
            laid.push(current);
        }
    }
    Ok(laid)
}

/// Draws legend rows centred in `area`, one below the other.
fn draw_legend(area: &Area<'_>, rows: &[Vec<(Entry, i32)>]) -> Result<()> {
    let (width, _) = area.dim_in_pixel();
    let style = font(14).color(&INK).pos(Pos::new(HPos::Left, VPos::Center));
    let muted = font(14).color(&MUTED).pos(Pos::new(HPos::Left, VPos::Center));
    for (index, row) in rows.iter().enumerate() {
        let total: i32 = row.iter().map(|(entry, text)| entry.glyph_width() + text).sum::<i32>()
            + ENTRY_GAP * (row.len() as i32 - 1);
        let mut x = (width as i32 - total) / 2;
        let y = (LEGEND_ROW_HEIGHT as i32) * index as i32 + LEGEND_ROW_HEIGHT as i32 / 2 + 2;
        for (entry, text_width) in row {
            match entry.glyph {
                Glyph::Solid(colour) => {
                    area.draw(&PathElement::new(vec![(x, y), (x + 28, y)], colour.stroke_width(2)))?;
                    area.draw(&Circle::new((x + 14, y), 4, colour.filled()))?;
                }
                Glyph::Dashed(colour) => {
                    for dash in [0, 11, 22] {
                        area.draw(&PathElement::new(vec![(x + dash, y), (x + dash + 6, y)], colour.stroke_width(2)))?;
                    }
                    area.draw(&TriangleMarker::new((x + 14, y), 6, colour.filled()))?;
                }
                Glyph::None => {}
            }
            let text_style = if matches!(entry.glyph, Glyph::None) { &muted } else { &style };
            area.draw(&Text::new(entry.text.clone(), (x + entry.glyph_width(), y), text_style.clone()))?;
            x += entry.glyph_width() + text_width + ENTRY_GAP;
        }
    }
    Ok(())
}

/// Encodes the RGB `pixels` as a PNG at `output`: into a temporary file beside it,
/// then renamed over it.
fn write_png(pixels: &[u8], output: &Path) -> Result<()> {
    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".plot-")
        .suffix(".png.tmp")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    {
        let mut file = BufWriter::new(temp.as_file());
        let mut encoder = png::Encoder::new(&mut file, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("writing the PNG header")?;
        writer.write_image_data(pixels).context("encoding the PNG")?;
        writer.finish().context("finishing the PNG")?;
        file.flush().with_context(|| format!("writing {}", temp.path().display()))?;
    }
    temp.as_file().sync_all().with_context(|| format!("writing {}", temp.path().display()))?;
    temp.persist(output).with_context(|| format!("renaming the picture into {}", output.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_read_plainly() {
        assert_eq!(thousands(100.0), "100");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(10000.0), "10,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(plain_number(20.0), "20");
        assert_eq!(plain_number(2.5), "2.5");
        assert_eq!(plain_number(0.05), "0.05");
        assert_eq!(plain_number(-10.0), "−10");
        assert_eq!(plain_number(0.0), "0");
    }

    #[test]
    fn log_ticks_are_one_two_five() {
        let (bold, faint) = log_ticks(0.3, 60.0);
        assert_eq!(bold, [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert!(faint.contains(&0.3) && faint.contains(&3.0) && faint.contains(&40.0), "{faint:?}");
        let (low, high) = widen_to_a_decade(3.0, 3.0);
        assert!((high / low - 10.0).abs() < 1e-9);
        assert!(log_ticks(low, high).0.len() >= 3);
    }
}
