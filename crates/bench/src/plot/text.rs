//! The plot's text: the font, found at run time, and [`Canvas`], plotters' bitmap
//! backend with text laid out by ab_glyph.
//!
//! plotters' `ab_glyph` feature knows no font of its own: the font is read from
//! [`FONT_ENV`], the usual DejaVu Sans paths, or `fc-match`, and registered with
//! plotters as `sans-serif` (its own text metrics then agree with ours). Its drawing
//! places each glyph's outline at the pen without the glyph's side bearing, so that
//! letters sit unevenly ("R SS", "l og"); [`Canvas`] draws text itself, each glyph at
//! its position from the advances and kerning, and passes everything else through to
//! [`BitMapBackend`] unchanged.

use ab_glyph::{point, Font, FontRef, Glyph, PxScale, ScaleFont};
use anyhow::{anyhow, bail, ensure, Context, Result};
use plotters::prelude::{BitMapBackend, DrawingBackend};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontStyle};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An environment variable naming the TrueType font to draw text with, tried first.
pub const FONT_ENV: &str = "DOCKFLARE_PLOT_FONT";

/// The family the font is registered as with plotters.
pub const FAMILY: &str = "sans-serif";

/// Where DejaVu Sans usually is: Debian and Ubuntu (fonts-dejavu-core), Arch, Fedora.
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
];

/// The faces text is drawn with, loaded once per process.
pub struct Fonts {
    normal: FontRef<'static>,
    /// DejaVuSans-Bold.ttf when it is beside DejaVuSans.ttf; bold text is drawn in the
    /// normal face without it.
    bold: Option<FontRef<'static>>,
}

static FONTS: OnceLock<Fonts> = OnceLock::new();

impl Fonts {
    /// The process's fonts, loaded (and registered with plotters) on first use.
    pub fn get() -> Result<&'static Fonts> {
        if let Some(fonts) = FONTS.get() {
            return Ok(fonts);
        }
        let (path, bytes) = find_font()?;
        let normal = load(FontStyle::Normal, bytes).with_context(|| format!("loading the font {}", path.display()))?;
        let bold = match path.file_name() {
            Some(name) if name == "DejaVuSans.ttf" => std::fs::read(path.with_file_name("DejaVuSans-Bold.ttf"))
                .ok()
                .and_then(|bytes| load(FontStyle::Bold, bytes).ok()),
            _ => None,
        };
        Ok(FONTS.get_or_init(|| Fonts { normal, bold }))
    }

    fn face(&self, style: FontStyle) -> &FontRef<'static> {
        match (style, &self.bold) {
            (FontStyle::Bold, Some(bold)) => bold,
            _ => &self.normal,
        }
    }
}

/// Parses a font and registers it with plotters. Both keep it for the life of the
/// process, and plotters wants it `'static`: it is leaked, once per process and style.
fn load(style: FontStyle, bytes: Vec<u8>) -> Result<FontRef<'static>> {
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let font = FontRef::try_from_slice(bytes).map_err(|_| anyhow!("not a TrueType or OpenType font"))?;
    plotters::style::register_font(FAMILY, style, bytes).map_err(|_| anyhow!("plotters cannot parse the font"))?;
    Ok(font)
}

fn find_font() -> Result<(PathBuf, Vec<u8>)> {
    if let Some(path) = std::env::var_os(FONT_ENV) {
        let path = PathBuf::from(path);
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading the font {FONT_ENV} names, {}", path.display()))?;
        return Ok((path, bytes));
    }
    let mut tried: Vec<String> = vec![format!("${FONT_ENV} (unset)")];
    for path in FONT_PATHS {
        match std::fs::read(path) {
            Ok(bytes) => return Ok((PathBuf::from(path), bytes)),
            Err(error) => tried.push(format!("{path} ({error})")),
        }
    }
    match fc_match() {
        Ok(path) => match std::fs::read(&path) {
            Ok(bytes) => return Ok((path, bytes)),
            Err(error) => tried.push(format!("fc-match's {} ({error})", path.display())),
        },
        Err(why) => tried.push(format!("fc-match \"DejaVu Sans\" ({why})")),
    }
    bail!(
        "no font to draw the plot's text with; tried {}. Install DejaVu Sans (Debian and Ubuntu: apt-get install \
         fonts-dejavu-core) or set {FONT_ENV} to a TrueType font file",
        tried.join(", ")
    )
}

/// The file fontconfig offers for DejaVu Sans (perhaps a substitute).
fn fc_match() -> Result<PathBuf> {
    let output = std::process::Command::new("fc-match")
        .args(["--format=%{file}", "DejaVu Sans:style=Book"])
        .output()
        .map_err(|error| anyhow!("{error}"))?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    ensure!(output.status.success() && !path.is_empty(), "found nothing");
    let extension = Path::new(&path).extension().and_then(|extension| extension.to_str()).unwrap_or("");
    ensure!(
        ["ttf", "otf"].contains(&extension.to_ascii_lowercase().as_str()),
        "offered {path}, not a TrueType or OpenType file"
    );
    Ok(PathBuf::from(path))
}

/// A line of text laid out from the origin: glyphs on a baseline at the ascent, and
/// the box from the ascent to the descent.
struct Layout {
    glyphs: Vec<Glyph>,
    width: i32,
    height: i32,
}

impl Layout {
    fn new(font: &FontRef<'static>, size: f64, text: &str) -> Layout {
        // As plotters does: the size is the pixel height of the face, ascent to descent.
        let scale = PxScale::from(size as f32);
        let font = font.as_scaled(scale);
        let ascent = font.ascent();
        let mut pen = 0.0f32;
        let mut previous = None;
        let mut glyphs = Vec::with_capacity(text.len());
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                pen += font.kern(previous, id);
            }
            glyphs.push(id.with_scale_and_position(scale, point(pen, ascent)));
            pen += font.h_advance(id);
            previous = Some(id);
        }
        Layout { glyphs, width: pen.ceil() as i32, height: (ascent - font.descent()).ceil() as i32 }
    }
}

/// [`BitMapBackend`] drawing its text with [`Fonts`].
pub struct Canvas<'a> {
    inner: BitMapBackend<'a>,
    fonts: &'static Fonts,
}

impl<'a> Canvas<'a> {
    /// Draws into `pixels`, RGB, `size.0` × `size.1`.
    pub fn new(pixels: &'a mut [u8], size: (u32, u32), fonts: &'static Fonts) -> Canvas<'a> {
        Canvas { inner: BitMapBackend::with_buffer(pixels, size), fonts }
    }
}

type Drawn<E> = Result<(), DrawingErrorKind<E>>;

impl<'a> DrawingBackend for Canvas<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Drawn<Self::ErrorType> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Drawn<Self::ErrorType> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Drawn<Self::ErrorType> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Drawn<Self::ErrorType> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Drawn<Self::ErrorType> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Drawn<Self::ErrorType> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> Drawn<Self::ErrorType> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let font = self.fonts.face(style.style());
        let layout = Layout::new(font, style.size(), text);
        // The anchor, and the rotation about it, as plotters' default draw_text has them.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Center => -layout.width / 2,
            HPos::Right => -layout.width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -layout.height / 2,
            VPos::Bottom => -layout.height,
        };
        let transform = style.transform();
        for glyph in layout.glyphs {
            let mut drawn = Ok(());
            let Some(outline) = font.outline_glyph(glyph) else { continue };
            let bounds = outline.px_bounds();
            let (left, top) = (bounds.min.x as i32 + dx, bounds.min.y as i32 + dy);
            outline.draw(|x, y, coverage| {
                if drawn.is_err() || coverage <= 0.0 {
                    return;
                }
                let (x, y) = transform.transform(left + x as i32, top + y as i32);
                let color = BackendColor { alpha: color.alpha * f64::from(coverage.min(1.0)), rgb: color.rgb };
                drawn = self.inner.draw_pixel((pos.0 + x, pos.1 + y), color);
            });
            drawn?;
        }
        Ok(())
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let layout = Layout::new(self.fonts.face(style.style()), style.size(), text);
        Ok((layout.width.max(0) as u32, layout.height.max(0) as u32))
    }
}
