//! The server's side of the HTTP upgrade (RFC 6455 section 4.2). Done here rather than by
//! tungstenite so that a request can wait for the game's verdict (`verify_handshakes`), a plain
//! GET can be a health check and a PROXY protocol header can come first. Pure functions:
//! [`parse_head`] reads a request head, [`decide`] says what to answer, [`switching_protocols`]
//! and [`http_response`] write the answer.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use tungstenite::http::StatusCode;

use super::handshake::Settings;
use crate::deflate::{server_answer, DeflateParams};
use crate::stats::Refusal;

/// Largest request head taken (request line and headers); a longer one is answered with 431.
pub(crate) const MAX_REQUEST_HEAD: usize = 16 << 10;
/// Most headers a request may have (more are answered with 431).
const MAX_HEADERS: usize = 128;
/// Headers of the 101 answer that belong to the handshake itself: neither `extra_headers` nor the
/// game's `accept_handshake` headers may set them.
pub(crate) const HANDSHAKE_HEADERS: [&str; 5] =
    ["connection", "upgrade", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"];

/// A request head as read off the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    /// GET, HEAD, ...
    pub(crate) method: String,
    /// The request target: path and query.
    pub(crate) target: String,
    /// The x of HTTP/1.x.
    pub(crate) minor_version: u8,
    /// Every header in the order received, names in lower case, values trimmed.
    pub(crate) headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The values of every header called `name` (lower case), in order.
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first value of the header `name` (lower case).
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether the comma-separated header `name` lists `token` (compared case-insensitively).
    fn lists(&self, name: &str, token: &str) -> bool {
        self.values(name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The path of the target, without its query.
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub(crate) enum Head {
    /// Not the whole head yet.
    Partial,
    /// A whole head, and the number of bytes it took.
    Complete(RequestHead, usize),
}

/// Why bytes are not a request head we take.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Longer than [`MAX_REQUEST_HEAD`], or too many headers: answered with 431.
    TooLarge,
    /// Not an HTTP/1 request: the connection is closed without an answer; why.
    Malformed(String),
}

/// Parses the request head at the start of `buf`.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Head, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(Head::Partial),
        Ok(httparse::Status::Complete(len)) if len > MAX_REQUEST_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Complete(len)) => {
            let head = RequestHead {
                method: request.method.unwrap_or_default().to_string(),
                target: request.path.unwrap_or("/").to_string(),
                minor_version: request.version.unwrap_or(0),
                headers: request
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string()))
                    .collect(),
            };
            Ok(Head::Complete(head, len))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(err) => Err(HeadError::Malformed(format!("not an HTTP request ({err})"))),
    }
}

/// What to do with a complete request head.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// A valid upgrade that the server's settings accept (the game may still refuse it).
    Upgrade(UpgradeAnswer),
    /// Answer with `response`, then close; `failure` is reported to the game (None: nothing to
    /// report, as for a health check); `refusal` says why it is turned away (None: a health check).
    Answer { response: Vec<u8>, failure: Option<String>, refusal: Option<Refusal> },
    /// Close without an answer (not a WebSocket request); why.
    Drop(String),
}

/// The parts of the 101 answer to an accepted upgrade, before the game adds its headers.
#[derive(Debug)]
pub(crate) struct UpgradeAnswer {
    accept_key: String,
    /// The sub-protocol picked ("" when none).
    pub(crate) protocol: String,
    /// The permessage-deflate parameters agreed on, and the answer's extension header.
    pub(crate) deflate: Option<(DeflateParams, String)>,
}

/// Decides the answer to `head` under `settings`: a health check, a refusal (HTTP status and why)
/// or an upgrade.
pub(crate) fn decide(head: &RequestHead, settings: &Settings) -> Verdict {
    let draining = settings.draining.load(Ordering::Relaxed);
    if !head.lists("upgrade", "websocket") {
        let is_get = head.method == "GET" || head.method == "HEAD";
        if is_get && !settings.health_check_path.is_empty() && head.path() == settings.health_check_path {
            let head_only = head.method == "HEAD";
            let response = if draining {
                http_response(503, &[("Retry-After", "5")], "draining\n", head_only)
            } else {
                http_response(200, &[], "ok\n", head_only)
            };
            return Verdict::Answer { response, failure: None, refusal: None };
        }
        return Verdict::Drop(format!(
            "not a WebSocket upgrade request ('{} {}' without 'Upgrade: websocket')",
            head.method.escape_debug(),
            head.target.escape_debug()
        ));
    }
    let refuse = |status: u16, reason: String| Verdict::Answer {
        response: http_response(status, &[], &reason, false),
        failure: Some(format!("refused with {status}: {reason}")),
        refusal: Some(if status == 403 { Refusal::Origin } else { Refusal::BadRequest }),
    };
    if head.method != "GET" {
        return refuse(400, format!("an upgrade must be a GET request, not {}", head.method));
    }
    if head.minor_version < 1 {
        return refuse(400, "an upgrade needs HTTP/1.1 or later".into());
    }
    if !head.lists("connection", "upgrade") {
        return refuse(400, "no 'Connection: Upgrade' header".into());
    }
    if head.value("sec-websocket-version") != Some("13") {
        let reason = "only WebSocket version 13 is supported".to_string();
        return Verdict::Answer {
            response: http_response(426, &[("Sec-WebSocket-Version", "13")], &reason, false),
            failure: Some(format!("refused with 426: {reason}")),
            refusal: Some(Refusal::BadRequest),
        };
    }
    let Some(key) = head.value("sec-websocket-key").filter(|key| is_valid_key(key)) else {
        return refuse(400, "no valid 'Sec-WebSocket-Key' header".into());
    };
    if draining {
        return Verdict::Answer {
            response: http_response(503, &[("Retry-After", "5")], "the server is shutting down\n", false),
            failure: Some("refused with 503: the server is draining".into()),
            refusal: Some(Refusal::Draining),
        };
    }
    if !settings.allowed_origins.is_empty() {
        if let Some(origin) = head.value("origin") {
            if !settings.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
                return refuse(403, format!("origin '{origin}' is not allowed"));
            }
        }
    }
    let offered: Vec<&str> =
        head.values("sec-websocket-protocol").flat_map(|v| v.split(',')).map(str::trim).filter(|p| !p.is_empty()).collect();
    let mut protocol = String::new();
    if !offered.is_empty() && !settings.protocols.is_empty() {
        let Some(selected) = settings.protocols.iter().find(|p| offered.contains(&p.as_str())) else {
            return refuse(400, format!("none of the offered sub-protocols ({}) is supported", offered.join(", ")));
        };
        protocol = selected.clone();
    }
    let extension_offers: Vec<&str> = head.values("sec-websocket-extensions").collect();
    let deflate = match server_answer(&settings.deflate, &extension_offers) {
        Ok(deflate) => deflate,
        Err(err) => return refuse(400, err.to_string()),
    };
    Verdict::Upgrade(UpgradeAnswer { accept_key: tungstenite::handshake::derive_accept_key(key.as_bytes()), protocol, deflate })
}

/// A `Sec-WebSocket-Key`: 16 bytes in base64 (24 characters).
fn is_valid_key(key: &str) -> bool {
    key.len() == 24 && data_encoding::BASE64.decode(key.as_bytes()).is_ok_and(|bytes| bytes.len() == 16)
}

/// The 101 answer: the handshake's own headers, then the server's `extra_headers`, then the
/// game's (`accept_handshake`).
pub(crate) fn switching_protocols(answer: &UpgradeAnswer, extra: &[(String, String)], game: &[(String, String)]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n",
        answer.accept_key
    );
    if !answer.protocol.is_empty() {
        let _ = write!(out, "Sec-WebSocket-Protocol: {}\r\n", answer.protocol);
    }
    if let Some((_, header)) = &answer.deflate {
        let _ = write!(out, "Sec-WebSocket-Extensions: {header}\r\n");
    }
    for (name, value) in extra.iter().chain(game) {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A complete HTTP answer that ends the connection: `status`, its reason phrase, `headers` and a
/// plain-text `body` (left out for a HEAD request, its length still given).
pub(crate) fn http_response(status: u16, headers: &[(&str, &str)], body: &str, head_only: bool) -> Vec<u8> {
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Unknown");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConnectionConfig;

    const UPGRADE: &str = "GET /room?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Token: abc\r\n\r\n";

    fn head(text: &str) -> RequestHead {
        match parse_head(text.as_bytes()) {
            Ok(Head::Complete(head, len)) => {
                assert_eq!(len, text.len());
                head
            }
            other => panic!("not a complete head: {other:?}"),
        }
    }

    fn settings(edit: impl FnOnce(&mut ConnectionConfig)) -> Settings {
        let mut config = ConnectionConfig::default();
        edit(&mut config);
        Settings::new(&config)
    }

    fn answer_text(verdict: Verdict) -> String {
        match verdict {
            Verdict::Answer { response, .. } => String::from_utf8(response).unwrap(),
            other => panic!("no answer: {other:?}"),
        }
    }

    #[test]
    fn a_head_is_parsed_in_pieces_with_names_in_lower_case() {
        for cut in 0..UPGRADE.len() {
            assert!(matches!(parse_head(&UPGRADE.as_bytes()[..cut]), Ok(Head::Partial)), "cut at {cut}");
        }
        let head = head(UPGRADE);
        assert_eq!((head.method.as_str(), head.target.as_str(), head.path()), ("GET", "/room?x=1", "/room"));
        assert_eq!(head.value("x-token"), Some("abc"));
        assert!(head.lists("connection", "upgrade"));
    }

    #[test]
    fn a_valid_upgrade_is_answered_with_the_rfc_accept_key() {
        let Verdict::Upgrade(answer) = decide(&head(UPGRADE), &settings(|_| {})) else { panic!("refused") };
        let text = String::from_utf8(switching_protocols(&answer, &[], &[("X-Session".into(), "7".into())])).unwrap();
        // RFC 6455 section 1.3's example key and answer.
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{text}");
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n") && text.ends_with("X-Session: 7\r\n\r\n"), "{text}");
    }

    #[test]
    fn bad_upgrades_are_refused_with_a_status_that_says_why() {
        let cases = [
            (UPGRADE.replace("GET", "POST"), "400"),
            (UPGRADE.replace("HTTP/1.1", "HTTP/1.0"), "400"),
            (UPGRADE.replace("keep-alive, Upgrade", "keep-alive"), "400"),
            (UPGRADE.replace("Version: 13", "Version: 8"), "426"),
            (UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), "400"),
        ];
        for (request, status) in cases {
            let text = answer_text(decide(&head(&request), &settings(|_| {})));
            assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{request}: {text}");
        }
        let origins = settings(|c| c.allowed_origins = vec!["https://game.example".into()]);
        let foreign = UPGRADE.replace("Host: h", "Host: h\r\nOrigin: https://evil.example");
        assert!(answer_text(decide(&head(&foreign), &origins)).starts_with("HTTP/1.1 403 "));
    }

    #[test]
    fn the_health_check_answers_200_then_503_while_draining() {
        let settings = settings(|c| c.health_check_path = "/healthz".into());
        let check = head("GET /healthz?probe=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(answer_text(decide(&check, &settings)).starts_with("HTTP/1.1 200 OK\r\n"));
        let head_request = answer_text(decide(&head("HEAD /healthz HTTP/1.1\r\n\r\n"), &settings));
        assert!(head_request.starts_with("HTTP/1.1 200 OK\r\n") && head_request.ends_with("\r\n\r\n"), "{head_request}");
        assert!(matches!(decide(&head("GET /other HTTP/1.1\r\n\r\n"), &settings), Verdict::Drop(_)));
        settings.draining.store(true, Ordering::Relaxed);
        assert!(answer_text(decide(&check, &settings)).starts_with("HTTP/1.1 503 "));
        assert!(answer_text(decide(&head(UPGRADE), &settings)).starts_with("HTTP/1.1 503 "));
    }

    #[test]
    fn oversized_and_malformed_heads_are_told_apart() {
        let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n", "a".repeat(MAX_REQUEST_HEAD));
        assert_eq!(parse_head(long.as_bytes()).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(parse_head(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap_err(), HeadError::TooLarge);
        assert!(matches!(parse_head(b"\x16\x03\x01\x02\x00"), Err(HeadError::Malformed(_))));
    }
}
