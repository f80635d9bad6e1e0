//! The flood client: this test binary run as a child process (`--flood-client MODE ADDR COUNT
//! INTERVAL_MS RATE GIVE_UP_MS`). It opens COUNT connections to ADDR at RATE per second from
//! 127.0.0.2 and up, plays MODE on each, and records per connection when it was started, when TCP
//! was established, what it sent, and when and how the server ended it.
//!
//! Talks to the test over its standard streams: prints `ready` once set up, starts on `go`;
//! a flood prints one `conn` line per connection and `done` when every connection has ended or
//! GIVE_UP_MS after the last was opened. `hold` mode (descriptor exhaustion) keeps its upgraded
//! connections open and answers `status` and `close N` until `quit`.

use std::collections::VecDeque;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::FromRawFd;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::support::{raise_descriptor_limit, upgrade_request, LOOPBACK_SOURCES};

/// What each connection of a flood does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// An upgrade request that never ends, one byte per interval.
    Slowloris,
    /// TLS: even connections send the ClientHello one byte per interval; odd ones send it whole
    /// and then nothing.
    TlsHello,
    /// A whole upgrade; once every connection has its 101, each sends a frame header announcing
    /// 1 GiB, then one payload byte per interval.
    HugeFrame,
    /// A whole upgrade, then the connection is held (descriptor exhaustion).
    Hold,
}

impl Mode {
    /// Its name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Slowloris => "slowloris",
            Mode::TlsHello => "tls-hello",
            Mode::HugeFrame => "huge-frame",
            Mode::Hold => "hold",
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        [Mode::Slowloris, Mode::TlsHello, Mode::HugeFrame, Mode::Hold].into_iter().find(|m| m.name() == name)
    }
}

/// A masked binary frame header announcing a 2^30-byte (1 GiB) payload.
pub(crate) const HUGE_FRAME_HEADER: [u8; 14] = [0x82, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];

/// One connection's record; times in microseconds since the child's start (`go`).
struct Conn {
    stream: TcpStream,
    /// What it sends, and how much of it went out.
    script: Vec<u8>,
    sent: usize,
    /// Sends its script one byte per interval (else whole, as soon as it can).
    trickle: bool,
    started: u64,
    established: Option<u64>,
    /// Bytes from the server: the HTTP answer, then frames.
    inbound: Vec<u8>,
    upgraded: Option<u64>,
    header_sent: Option<u64>,
    close_code: Option<u16>,
    close_frame_at: Option<u64>,
    ended: Option<(u64, &'static str)>,
}

/// Runs the flood client with the arguments after the flag; the process's exit code.
pub(crate) fn run(args: &[String]) -> std::process::ExitCode {
    match run_inner(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            println!("error {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &[String]) -> Result<(), String> {
    let [mode, addr, count, interval_ms, rate, give_up_ms] = args else {
        return Err(format!("expected MODE ADDR COUNT INTERVAL_MS RATE GIVE_UP_MS, got {args:?}"));
    };
    let mode = Mode::parse(mode).ok_or_else(|| format!("unknown mode {mode}"))?;
    let number = |s: &String| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
    let addr: SocketAddrV4 = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let count = number(count)? as usize;
    let interval = Duration::from_millis(number(interval_ms)?);
    let rate = number(rate)?.max(1);
    let give_up = Duration::from_millis(number(give_up_ms)?);
    raise_descriptor_limit(count as u64 + 100)?;
    let hello = if mode == Mode::TlsHello { client_hello()? } else { Vec::new() };
    let commands = read_commands();
    println!("ready");
    flush_stdout();
    match commands.recv() {
        Ok(line) if line == "go" => {}
        other => return Err(format!("expected go, got {other:?}")),
    }
    let mut flood = Flood {
        mode,
        addr,
        interval,
        poll: Poll::new().map_err(|e| e.to_string())?,
        conns: Vec::with_capacity(count),
        due: VecDeque::new(),
        epoch: Instant::now(),
        open: 0,
        upgraded: 0,
        closing: None,
        lost: 0,
    };
    let mut events = Events::with_capacity(1024);
    let mut last_opened = None;
    let mut headers_sent = false;
    loop {
        let now = flood.micros();
        let wanted = ((now as u128 * rate as u128) / 1_000_000).min(count as u128) as usize;
        while flood.conns.len() < wanted {
            let i = flood.conns.len();
            let (script, trickle) = match mode {
                Mode::Slowloris => (upgrade_request_never_ending(), true),
                Mode::TlsHello => (hello.clone(), i.is_multiple_of(2)),
                Mode::HugeFrame | Mode::Hold => (upgrade_request(&addr.to_string()).into_bytes(), false),
            };
            flood.open_connection(i, script, trickle)?;
            if flood.conns.len() == count {
                last_opened = Some(Instant::now());
            }
        }
        flood.poll.poll(&mut events, Some(Duration::from_millis(2))).map_err(|e| e.to_string())?;
        for event in events.iter() {
            flood.on_event(event.token().0, event.is_writable(), event.is_readable() || event.is_read_closed() || event.is_error());
        }
        flood.trickle_due();
        if mode == Mode::HugeFrame && !headers_sent && flood.upgraded == count {
            headers_sent = true;
            flood.send_huge_headers();
        }
        if mode == Mode::Hold {
            loop {
                match commands.try_recv() {
                    Ok(line) => {
                        if !flood.command(&line) {
                            return Ok(());
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            continue;
        }
        let all_ended = flood.conns.len() == count && flood.open == 0;
        if all_ended || last_opened.is_some_and(|at| at.elapsed() > give_up) {
            break;
        }
    }
    flood.report();
    Ok(())
}

/// An upgrade request that is never finished (no blank line): a slowloris.
fn upgrade_request_never_ending() -> Vec<u8> {
    let mut request = b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".to_vec();
    request.extend_from_slice(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n");
    for i in 0..20 {
        request.extend_from_slice(format!("X-Slow-{i}: {}\r\n", "a".repeat(40)).as_bytes());
    }
    request
}

/// A real ClientHello (rustls, for "localhost"); every connection sends the same bytes.
#[cfg(feature = "rustls")]
fn client_hello() -> Result<Vec<u8>, String> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut out).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(not(feature = "rustls"))]
fn client_hello() -> Result<Vec<u8>, String> {
    Err("the TLS flood needs the rustls feature".into())
}

/// Lines from the test on standard input, read on a thread of their own.
fn read_commands() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_string()).is_err() {
                break;
            }
        }
    });
    rx
}

fn flush_stdout() {
    let _ = std::io::stdout().flush();
}

struct Flood {
    mode: Mode,
    addr: SocketAddrV4,
    interval: Duration,
    poll: Poll,
    conns: Vec<Conn>,
    /// Trickling connections by when their next byte is due (all have the same interval, so
    /// the queue stays in order).
    due: VecDeque<(Instant, usize)>,
    epoch: Instant,
    /// Connections not ended yet.
    open: usize,
    /// `hold`, `huge-frame`: connections that got their 101.
    upgraded: usize,
    /// `hold`: after `close N`, when they were closed and how many upgrades since then are awaited.
    closing: Option<(Instant, usize)>,
    /// `hold`: upgraded connections the server ended (it should end none).
    lost: usize,
}

impl Flood {
    fn micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn open_connection(&mut self, i: usize, script: Vec<u8>, trickle: bool) -> Result<(), String> {
        let source = LOOPBACK_SOURCES[i % LOOPBACK_SOURCES.len()];
        let started = self.micros();
        let mut stream = connect_from(source, self.addr).map_err(|e| format!("connection {i} from {source}: {e}"))?;
        self.poll.registry().register(&mut stream, Token(i), Interest::READABLE | Interest::WRITABLE).map_err(|e| e.to_string())?;
        self.conns.push(Conn {
            stream,
            script,
            sent: 0,
            trickle,
            started,
            established: None,
            inbound: Vec::new(),
            upgraded: None,
            header_sent: None,
            close_code: None,
            close_frame_at: None,
            ended: None,
        });
        self.open += 1;
        Ok(())
    }

    fn on_event(&mut self, i: usize, writable: bool, readable: bool) {
        let now = self.micros();
        let Some(conn) = self.conns.get_mut(i) else { return };
        if conn.ended.is_some() {
            return;
        }
        if writable && conn.established.is_none() {
            if let Ok(Some(err)) | Err(err) = conn.stream.take_error() {
                return self.end(i, now, if err.kind() == ErrorKind::ConnectionRefused { "refused" } else { "connect-error" });
            }
            if conn.stream.peer_addr().is_err() {
                return;
            }
            conn.established = Some(now);
            if conn.trickle {
                self.send_next(i, 1);
                self.due.push_back((Instant::now() + self.interval, i));
            } else {
                let len = conn.script.len();
                self.send_next(i, len);
            }
        }
        if readable {
            self.read(i);
        }
    }

    /// Sends up to `n` more bytes of connection `i`'s script.
    fn send_next(&mut self, i: usize, n: usize) {
        let now = self.micros();
        let conn = &mut self.conns[i];
        let end = (conn.sent + n).min(conn.script.len());
        if conn.sent == end {
            return;
        }
        match conn.stream.write(&conn.script[conn.sent..end]) {
            Ok(written) => conn.sent += written,
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) => {
                let how = if err.kind() == ErrorKind::BrokenPipe { "write-epipe" } else { "write-reset" };
                self.end(i, now, how);
            }
        }
    }

    fn trickle_due(&mut self) {
        let now = Instant::now();
        while let Some(&(at, i)) = self.due.front() {
            if at > now {
                break;
            }
            self.due.pop_front();
            if self.conns[i].ended.is_some() {
                continue;
            }
            if self.conns[i].sent == self.conns[i].script.len() && self.mode == Mode::HugeFrame {
                // The payload: endless, one byte at a time.
                self.conns[i].script.push(0);
            }
            self.send_next(i, 1);
            self.due.push_back((at + self.interval, i));
        }
    }

    fn read(&mut self, i: usize) {
        let mut chunk = [0u8; 4096];
        loop {
            let now = self.micros();
            let conn = &mut self.conns[i];
            match conn.stream.read(&mut chunk) {
                Ok(0) => return self.end(i, now, "eof"),
                Ok(n) => {
                    // A TLS server's flight is of no interest; keep only what is parsed.
                    if self.mode != Mode::TlsHello {
                        conn.inbound.extend_from_slice(&chunk[..n]);
                    }
                    self.parse(i, now);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.end(i, now, "reset"),
            }
        }
    }

    /// The 101 answer, then the server's frames (a close frame's code).
    fn parse(&mut self, i: usize, now: u64) {
        let conn = &mut self.conns[i];
        if conn.upgraded.is_none() {
            let Some(end) = conn.inbound.windows(4).position(|w| w == b"\r\n\r\n") else { return };
            if !conn.inbound.starts_with(b"HTTP/1.1 101") {
                return self.end(i, now, "not-101");
            }
            conn.inbound.drain(..end + 4);
            conn.upgraded = Some(now);
            self.upgraded += 1;
            if let Some((_, awaited)) = &mut self.closing {
                *awaited = awaited.saturating_sub(1);
                if *awaited == 0 {
                    let (closed_at, _) = self.closing.take().unwrap_or((Instant::now(), 0));
                    println!("admitted {}", closed_at.elapsed().as_micros());
                    flush_stdout();
                }
            }
        }
        let conn = &mut self.conns[i];
        while conn.inbound.len() >= 2 {
            let (opcode, short) = (conn.inbound[0] & 0x0f, (conn.inbound[1] & 0x7f) as usize);
            let (len, at) = match short {
                126 if conn.inbound.len() >= 4 => (u16::from_be_bytes([conn.inbound[2], conn.inbound[3]]) as usize, 4),
                127 => return, // the server sends no frame that large here
                126 => return,
                n => (n, 2),
            };
            if conn.inbound.len() < at + len {
                return;
            }
            if opcode == 8 && len >= 2 && conn.close_code.is_none() {
                conn.close_code = Some(u16::from_be_bytes([conn.inbound[at], conn.inbound[at + 1]]));
                conn.close_frame_at = Some(now);
            }
            conn.inbound.drain(..at + len);
        }
    }

    fn end(&mut self, i: usize, now: u64, how: &'static str) {
        let conn = &mut self.conns[i];
        if conn.ended.is_some() {
            return;
        }
        conn.ended = Some((now, how));
        let _ = self.poll.registry().deregister(&mut conn.stream);
        // Closes the socket now (the record stays).
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        self.open -= 1;
        if conn.upgraded.is_some() && self.mode == Mode::Hold {
            self.lost += 1;
        }
    }

    /// `huge-frame` mode, once every connection is upgraded: each sends its 1 GiB frame header,
    /// all at once, and then trickles payload bytes.
    fn send_huge_headers(&mut self) {
        let at = self.micros();
        let next = Instant::now() + self.interval;
        for i in 0..self.conns.len() {
            if self.conns[i].ended.is_some() {
                continue;
            }
            let conn = &mut self.conns[i];
            conn.script = HUGE_FRAME_HEADER.to_vec();
            conn.sent = 0;
            conn.header_sent = Some(at);
            self.send_next(i, HUGE_FRAME_HEADER.len());
            self.due.push_back((next, i));
        }
    }

    /// `hold` mode: `status`, `close N`, `quit`; false on `quit`.
    fn command(&mut self, line: &str) -> bool {
        let mut words = line.split_whitespace();
        match (words.next(), words.next().and_then(|n| n.parse::<usize>().ok())) {
            (Some("status"), _) => println!("status upgraded={} lost={} open={}", self.upgraded, self.lost, self.open),
            (Some("close"), Some(n)) => {
                let victims: Vec<usize> = (0..self.conns.len())
                    .filter(|&i| self.conns[i].upgraded.is_some() && self.conns[i].ended.is_none())
                    .take(n)
                    .collect();
                let at = Instant::now();
                for &i in &victims {
                    let conn = &mut self.conns[i];
                    conn.ended = Some((self.epoch.elapsed().as_micros() as u64, "closed-by-us"));
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
                    self.open -= 1;
                }
                self.closing = Some((at, victims.len()));
                println!("closed {}", victims.len());
            }
            (Some("quit"), _) | (None, _) => return false,
            _ => println!("error unknown command {line}"),
        }
        flush_stdout();
        true
    }

    /// One line per connection: `conn I STARTED ESTABLISHED ENDED HOW SENT UPGRADED HEADER CODE
    /// CLOSE_FRAME_AT` (microseconds since `go`, `-` for never), then `done`.
    fn report(&self) {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        for (i, c) in self.conns.iter().enumerate() {
            let _ = writeln!(
                out,
                "conn {i} {} {} {} {} {} {} {} {} {}",
                c.started,
                opt(c.established),
                opt(c.ended.map(|(at, _)| at)),
                c.ended.map_or("open", |(_, how)| how),
                c.sent,
                opt(c.upgraded),
                opt(c.header_sent),
                opt(c.close_code.map(u64::from)),
                opt(c.close_frame_at),
            );
        }
        let _ = writeln!(out, "done");
        let _ = out.flush();
    }
}

/// A non-blocking TCP connect from `source` (port chosen at connect, per destination, so that
/// the ports of one source address serve every server).
fn connect_from(source: Ipv4Addr, server: SocketAddrV4) -> std::io::Result<TcpStream> {
    let sockaddr = |addr: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr.ip().octets()) },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls with valid pointers and lengths; the descriptor is owned by the
    // TcpStream made from it, or closed here on failure.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let local = sockaddr(SocketAddrV4::new(source, 0));
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(server);
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
        }
        Ok(TcpStream::from_std(stream))
    }
}
