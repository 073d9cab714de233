//! `dockflare-testkit`: the small programs DockFlare's Docker tests run inside containers.
//!
//! `deploy/images.sh` builds this binary statically and wraps it in two `FROM scratch` images, so the
//! tests need no registry:
//!
//! - `dockflare-testkit origin [--listen ADDR] [--name NAME]` — `dockflare-test/origin`: an HTTP/1.1
//!   origin that answers every request with `200` and
//!   `{"origin":NAME,"host":HOST,"path":TARGET,"method":METHOD}` (`host` is the `Host` header or
//!   `null`; `path` is the request target as sent, query included). `/healthz` answers `ok`.
//!   `--listen` defaults to `0.0.0.0:80`; `--name` to `$ORIGIN_NAME`, else `/etc/hostname`, else
//!   `$HOSTNAME`.
//! - `dockflare-testkit connector-stub [ARGS...]` — `dockflare-test/connector`: a stand-in for
//!   `cloudflared`. It prints one JSON line, `{"argv":[ARGS...],"env":{NAME:VALUE,...}}`, to stdout,
//!   then serves `GET /ready` (cloudflared's readiness answer) and `GET /args` (the same JSON line) on
//!   the address of `--metrics ADDR` in ARGS, else `0.0.0.0:2000`. With `version`, `--version` or `-v`
//!   in ARGS it prints `cloudflared version 2026.1.0 (stub)` and exits. It echoes every environment
//!   variable, the tunnel token included: give it test tokens only.
//!
//! Both run until SIGTERM or SIGINT, on which they exit at once with status 0. They run as PID 1 in
//! their containers, where the kernel drops those signals unless a handler is installed, so one is.
//!
//! Standard library only (plus `libc` for the signal handlers); one thread per connection; every
//! connection closes after one response. Listen addresses should be IP addresses: a static binary in
//! an empty image cannot resolve host names.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use std::{env, fs, thread};

const USAGE: &str = "usage:
  dockflare-testkit origin [--listen ADDR] [--name NAME]
  dockflare-testkit connector-stub [CLOUDFLARED ARGS...]";

/// What the stub answers to `version` / `--version`, in cloudflared's format.
const STUB_VERSION: &str = "cloudflared version 2026.1.0 (stub)";
const DEFAULT_ORIGIN_LISTEN: &str = "0.0.0.0:80";
const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:2000";
/// Longest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body read and thrown away before answering (so closing does not reset the client).
const MAX_DISCARDED_BODY: u64 = 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1).map(|arg| arg.to_string_lossy().into_owned());
    let result = match args.next().as_deref() {
        Some("origin") => origin(args.collect()),
        Some("connector-stub") => connector_stub(args.collect()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(Failure::Usage(format!("unknown subcommand {other:?}"))),
        None => Err(Failure::Usage("missing subcommand".into())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("dockflare-testkit: {message}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("dockflare-testkit: error: {message}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    /// Bad command line: the message and the usage are printed, exit status 2.
    Usage(String),
    /// Could not do the job (bind, signals): exit status 1.
    Runtime(String),
}

// --- origin -------------------------------------------------------------------------------------

fn origin(args: Vec<String>) -> Result<(), Failure> {
    let mut listen = DEFAULT_ORIGIN_LISTEN.to_owned();
    let mut name = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg, None),
        };
        let slot = match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--listen" => &mut listen,
            "--name" => name.insert(String::new()),
            _ => return Err(Failure::Usage(format!("origin: unknown argument {flag:?}"))),
        };
        *slot = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(Failure::Usage(format!("origin: {flag} needs a value"))),
        };
    }
    let name = name.unwrap_or_else(default_origin_name);

    install_exit_on_signals()?;
    let listener = bind(&listen)?;
    eprintln!("dockflare-testkit origin: {name:?} listening on {}", local_addr(&listener, &listen));
    serve(listener, move |request| {
        if path_only(&request.target) == "/healthz" {
            return Response::text(200, "ok");
        }
        let mut body = String::from("{\"origin\":");
        json_string(&mut body, &name);
        body.push_str(",\"host\":");
        match &request.host {
            Some(host) => json_string(&mut body, host),
            None => body.push_str("null"),
        }
        body.push_str(",\"path\":");
        json_string(&mut body, &request.target);
        body.push_str(",\"method\":");
        json_string(&mut body, &request.method);
        body.push('}');
        Response::json(200, body)
    })
}

/// `$ORIGIN_NAME`, else the first line of `/etc/hostname` (Docker writes the container's), else
/// `$HOSTNAME`, else `origin`.
fn default_origin_name() -> String {
    let non_empty = |value: String| {
        let value = value.trim().to_owned();
        (!value.is_empty()).then_some(value)
    };
    env::var("ORIGIN_NAME")
        .ok()
        .and_then(non_empty)
        .or_else(|| fs::read_to_string("/etc/hostname").ok().and_then(non_empty))
        .or_else(|| env::var("HOSTNAME").ok().and_then(non_empty))
        .unwrap_or_else(|| "origin".to_owned())
}

// --- connector-stub -----------------------------------------------------------------------------

fn connector_stub(args: Vec<String>) -> Result<(), Failure> {
    if args.first().is_some_and(|arg| arg == "version") || args.iter().any(|arg| arg == "--version" || arg == "-v") {
        println!("{STUB_VERSION}");
        return Ok(());
    }
    let listen = metrics_address(&args)?.unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_owned());
    let line = Arc::new(invocation_json(&args, env::vars_os()));
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(|error| Failure::Runtime(format!("cannot write to stdout: {error}")))?;
    }

    install_exit_on_signals()?;
    let listener = bind(&listen)?;
    eprintln!("dockflare-testkit connector-stub: serving /ready and /args on {}", local_addr(&listener, &listen));
    serve(listener, move |request| {
        if request.method != "GET" && request.method != "HEAD" {
            return Response::text(405, "method not allowed");
        }
        match path_only(&request.target) {
            "/ready" => Response::json(200, r#"{"status":200,"readyConnections":1,"connectorId":"stub"}"#.to_owned()),
            "/args" => Response::json(200, line.as_str().to_owned()),
            _ => Response::text(404, "not found"),
        }
    })
}

/// The value of cloudflared's `--metrics ADDR` / `--metrics=ADDR` (also with one dash), if given; the
/// last one wins.
fn metrics_address(args: &[String]) -> Result<Option<String>, Failure> {
    let mut found = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else { continue };
        let value = if flag == "metrics" {
            args.next().cloned()
        } else if let Some(value) = flag.strip_prefix("metrics=") {
            Some(value.to_owned())
        } else {
            continue;
        };
        match value {
            Some(value) if !value.is_empty() => found = Some(value),
            _ => return Err(Failure::Usage(format!("connector-stub: {arg} needs an address"))),
        }
    }
    Ok(found)
}

/// `{"argv":[...],"env":{...}}`, environment sorted by name.
fn invocation_json(args: &[String], vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>) -> String {
    let env: BTreeMap<String, String> =
        vars.map(|(name, value)| (name.to_string_lossy().into_owned(), value.to_string_lossy().into_owned())).collect();
    let mut out = String::from("{\"argv\":[");
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, arg);
    }
    out.push_str("],\"env\":{");
    for (i, (name, value)) in env.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, name);
        out.push(':');
        json_string(&mut out, value);
    }
    out.push_str("}}");
    out
}

// --- signals ------------------------------------------------------------------------------------

extern "C" fn exit_now(_signal: libc::c_int) {
    // SAFETY: `_exit` is async-signal-safe; nothing else runs in the handler.
    unsafe { libc::_exit(0) }
}

/// SIGTERM and SIGINT end the process at once with status 0 (`docker stop` then takes milliseconds).
fn install_exit_on_signals() -> Result<(), Failure> {
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        // SAFETY: an all-zero `sigaction` is a valid value (no flags); the mask is then initialised by
        // `sigemptyset`, and the handler only calls `_exit`.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = exit_now as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(Failure::Runtime(format!("cannot install a {name} handler: {}", io::Error::last_os_error())));
        }
    }
    Ok(())
}

// --- HTTP/1.1, one request per connection -------------------------------------------------------

struct Request {
    method: String,
    /// The request target as sent: path and query.
    target: String,
    host: Option<String>,
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn json(status: u16, body: String) -> Self {
        Response { status, content_type: "application/json", body }
    }

    fn text(status: u16, body: &str) -> Self {
        Response { status, content_type: "text/plain; charset=utf-8", body: body.to_owned() }
    }
}

fn bind(listen: &str) -> Result<TcpListener, Failure> {
    TcpListener::bind(listen).map_err(|error| Failure::Runtime(format!("cannot listen on {listen}: {error}")))
}

fn local_addr(listener: &TcpListener, listen: &str) -> String {
    listener.local_addr().map_or_else(|_| listen.to_owned(), |addr| addr.to_string())
}

fn path_only(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// Accepts forever, one thread per connection.
fn serve<H>(listener: TcpListener, handler: H) -> Result<(), Failure>
where
    H: Fn(&Request) -> Response + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let handler = Arc::clone(&handler);
                let spawned = thread::Builder::new().spawn(move || {
                    if let Err(error) = handle_connection(stream, handler.as_ref()) {
                        eprintln!("dockflare-testkit: connection from {peer}: {error}");
                    }
                });
                if let Err(error) = spawned {
                    eprintln!("dockflare-testkit: cannot start a thread for {peer}: {error}");
                }
            }
            Err(error) => {
                // Out of descriptors or similar: do not spin.
                eprintln!("dockflare-testkit: accept failed: {error}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn handle_connection(mut stream: TcpStream, handler: &dyn Fn(&Request) -> Response) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let response = match read_request(&mut stream) {
        Ok(Some(request)) => {
            let mut response = handler(&request);
            if request.method == "HEAD" {
                // Same headers, no body (Content-Length still says how long it would be).
                let length = response.body.len();
                response.body.clear();
                return write_response(&mut stream, &response, length);
            }
            response
        }
        Ok(None) => return Ok(()), // closed before sending anything
        Err(HeadError::Io(error)) => return Err(error),
        Err(HeadError::TooLarge) => Response::text(431, "request head too large"),
        Err(HeadError::Malformed(why)) => Response::text(400, why),
    };
    let length = response.body.len();
    write_response(&mut stream, &response, length)
}

fn write_response(stream: &mut TcpStream, response: &Response, content_length: usize) -> io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Unknown",
    };
    let mut head = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {content_length}\r\nConnection: close\r\n\r\n",
        response.status, response.content_type
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.body.as_bytes())?;
    stream.flush()?;
    // The peer may already be gone; nothing left to do either way.
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

enum HeadError {
    Io(io::Error),
    TooLarge,
    Malformed(&'static str),
}

/// Reads the request head; then reads and drops up to `MAX_DISCARDED_BODY` of a `Content-Length`
/// body, so that closing the connection does not reset it before the client has read the answer.
fn read_request(stream: &mut TcpStream) -> Result<Option<Request>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let n = stream.read(&mut chunk).map_err(HeadError::Io)?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(HeadError::Malformed("connection closed mid-request")) };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed("unsupported HTTP version"));
    }
    let mut host = None;
    let mut content_length: u64 = 0;
    for line in lines.filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HeadError::Malformed("malformed header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("host") {
            host = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().map_err(|_| HeadError::Malformed("malformed Content-Length"))?;
        }
    }
    let already_read = (buf.len() - head_end) as u64;
    let to_discard = content_length.saturating_sub(already_read).min(MAX_DISCARDED_BODY);
    // Best effort: the answer does not depend on the body.
    let _ = io::copy(&mut Read::by_ref(stream).take(to_discard), &mut io::sink());
    Ok(Some(Request { method: method.to_owned(), target: target.to_owned(), host }))
}

/// Index just past the blank line that ends the head (`\r\n\r\n`, or `\n\n` from lax clients).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Appends `value` as a JSON string literal.
fn json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn metrics_address_forms() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["tunnel", "--no-autoupdate", "run"], None),
            (&["tunnel", "--metrics", "0.0.0.0:2001", "run"], Some("0.0.0.0:2001")),
            (&["tunnel", "--metrics=127.0.0.1:9", "run"], Some("127.0.0.1:9")),
            (&["-metrics", "[::]:2002"], Some("[::]:2002")),
            (&["--metrics", "a:1", "--metrics", "b:2"], Some("b:2")),
        ];
        for (args, expected) in cases {
            let got = metrics_address(&strings(args)).ok().flatten();
            assert_eq!(got.as_deref(), *expected, "{args:?}");
        }
        for args in [&["--metrics"][..], &["tunnel", "--metrics="][..]] {
            assert!(metrics_address(&strings(args)).is_err(), "{args:?}");
        }
    }

    #[test]
    fn invocation_json_escapes_and_sorts() {
        let vars =
            [("B", "x\"y"), ("A", "line\nbreak\u{1}")].into_iter().map(|(name, value)| (name.into(), value.into()));
        assert_eq!(
            invocation_json(&strings(&["tunnel", "run"]), vars),
            r#"{"argv":["tunnel","run"],"env":{"A":"line\nbreak\u0001","B":"x\"y"}}"#
        );
        assert_eq!(invocation_json(&[], std::iter::empty()), r#"{"argv":[],"env":{}}"#);
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(27));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }

    #[test]
    fn path_without_query() {
        assert_eq!(path_only("/ready?x=1"), "/ready");
        assert_eq!(path_only("/healthz"), "/healthz");
    }
}
