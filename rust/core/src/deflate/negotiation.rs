//! The `Sec-WebSocket-Extensions` exchange for permessage-deflate (RFC 7692 sections 5 and 7.1):
//! what a client offers ([`client_offer`]), which offer a server accepts and what it answers
//! ([`server_answer`]), and whether a client can live with that answer ([`client_accept`]).
//!
//! The header grammar is RFC 6455 section 9.1 with RFC 7230's list rules: elements separated by
//! commas (empty ones ignored), each an extension token followed by `; name[=value]` parameters,
//! a value being a token or a quoted-string whose content is a token.

use super::{clamp_window_bits, DeflateConfig, DeflateParams, EXTENSION_NAME, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::Error;

/// The `Sec-WebSocket-Extensions` value a client sends for `config`; `None` when compression is
/// off (send no header). It always carries `client_max_window_bits`, so that a server may limit
/// our window (RFC 7692 section 7.1.2.2).
pub(crate) fn client_offer(config: &DeflateConfig) -> Option<String> {
    if !config.enabled {
        return None;
    }
    let mut offer = String::from(EXTENSION_NAME);
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    let server_bits = clamp_window_bits(config.server_max_window_bits);
    if server_bits < MAX_WINDOW_BITS {
        offer.push_str(&format!("; server_max_window_bits={server_bits}"));
    }
    let client_bits = clamp_window_bits(config.client_max_window_bits);
    if client_bits < MAX_WINDOW_BITS {
        offer.push_str(&format!("; client_max_window_bits={client_bits}"));
    } else {
        offer.push_str("; client_max_window_bits");
    }
    Some(offer)
}

/// The server's choice among the client's offers: `offers` are the values of every
/// `Sec-WebSocket-Extensions` header of the request. The first permessage-deflate offer whose
/// parameters are all known, given once and valid is accepted (RFC 7692 section 5: an offer
/// with a parameter the server cannot accept is declined, and the next one tried); the result is
/// the agreement and the response header value. `Ok(None)`: compression off here, or no
/// acceptable offer. A header that does not follow the grammar is an [`Error::InvalidHeader`]
/// (the handshake answers 400, as for any malformed request).
pub(crate) fn server_answer(config: &DeflateConfig, offers: &[&str]) -> Result<Option<(DeflateParams, String)>, Error> {
    if !config.enabled {
        return Ok(None);
    }
    let mut elements = Vec::new();
    for value in offers {
        let parsed = parse_extension_list(value)
            .map_err(|why| Error::InvalidHeader(format!("Sec-WebSocket-Extensions '{value}' is malformed: {why}")))?;
        elements.extend(parsed);
    }
    let accepted = elements
        .iter()
        .filter(|element| element.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|element| DeflateParamSet::parse(&element.params, Sender::Client).ok())
        .map(|offer| accept_offer(config, &offer));
    Ok(accepted)
}

/// The client's check of the server's answer (`response`: the response's
/// `Sec-WebSocket-Extensions` value, several headers joined with commas; `None` when absent).
/// No answer means no compression. RFC 6455 section 9.1 and RFC 7692 section 7.1: an extension
/// that was not offered, permessage-deflate twice, an unknown, repeated or invalid parameter, a
/// parameter we asked for and the server left out (`server_no_context_takeover`,
/// `server_max_window_bits`) or a window larger than offered fails the connection
/// ([`Error::Protocol`]).
pub(crate) fn client_accept(config: &DeflateConfig, response: Option<&str>) -> Result<Option<DeflateParams>, Error> {
    let Some(value) = response else { return Ok(None) };
    let elements = parse_extension_list(value)
        .map_err(|why| Error::Protocol(format!("the server's Sec-WebSocket-Extensions '{value}' is malformed: {why}")))?;
    let mut agreed = None;
    for element in elements {
        if !config.enabled || !element.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(Error::Protocol(format!("the server agreed to extension '{}', which was not offered", element.name)));
        }
        if agreed.is_some() {
            return Err(Error::Protocol("the server agreed to permessage-deflate twice".into()));
        }
        let answer = DeflateParamSet::parse(&element.params, Sender::Server)
            .map_err(|why| Error::Protocol(format!("the server's permessage-deflate answer is invalid: {why}")))?;
        agreed = Some(check_answer(config, &answer).map_err(|why| {
            Error::Protocol(format!("the server's permessage-deflate answer does not match our offer: {why}"))
        })?);
    }
    Ok(agreed)
}

/// The server's answer to an acceptable offer, from its settings (RFC 7692 section 7.1: the
/// server may always add the no-context-takeover parameters; it answers a window limit with the
/// same or a smaller one, may announce a smaller window of its own unasked, and may limit the
/// client's window only when the client offered `client_max_window_bits`).
fn accept_offer(config: &DeflateConfig, offer: &DeflateParamSet) -> (DeflateParams, String) {
    let server_no_context_takeover = offer.server_no_context_takeover || config.server_no_context_takeover;
    let client_no_context_takeover = offer.client_no_context_takeover || config.client_no_context_takeover;
    let our_bits = clamp_window_bits(config.server_max_window_bits);
    let (server_max_window_bits, answer_server_bits) = match offer.server_max_window_bits {
        Some(asked) => (asked.min(our_bits), true),
        None => (our_bits, our_bits < MAX_WINDOW_BITS),
    };
    let client_limit = clamp_window_bits(config.client_max_window_bits);
    let (client_max_window_bits, answer_client_bits) = match offer.client_max_window_bits {
        ClientWindowBits::Absent => (MAX_WINDOW_BITS, false),
        ClientWindowBits::WithoutValue => (client_limit, client_limit < MAX_WINDOW_BITS),
        ClientWindowBits::Value(offered) => (offered.min(client_limit), true),
    };
    let params =
        DeflateParams { server_no_context_takeover, client_no_context_takeover, server_max_window_bits, client_max_window_bits };
    let mut answer = String::from(EXTENSION_NAME);
    if server_no_context_takeover {
        answer.push_str("; server_no_context_takeover");
    }
    if client_no_context_takeover {
        answer.push_str("; client_no_context_takeover");
    }
    if answer_server_bits {
        answer.push_str(&format!("; server_max_window_bits={server_max_window_bits}"));
    }
    if answer_client_bits {
        answer.push_str(&format!("; client_max_window_bits={client_max_window_bits}"));
    }
    (params, answer)
}

/// The agreement a client makes of the server's `answer` to our offer for `config`, or why the
/// answer is unacceptable.
fn check_answer(config: &DeflateConfig, answer: &DeflateParamSet) -> Result<DeflateParams, String> {
    // RFC 7692 7.1.1.1: a server accepting an offer with this parameter MUST include it.
    if config.server_no_context_takeover && !answer.server_no_context_takeover {
        return Err("server_no_context_takeover was asked for and is missing".into());
    }
    let asked_server_bits = clamp_window_bits(config.server_max_window_bits);
    let server_max_window_bits = match answer.server_max_window_bits {
        // 7.1.2.1: the same or a smaller value than offered.
        Some(bits) if bits > asked_server_bits => {
            return Err(format!("server_max_window_bits={bits} is larger than the {asked_server_bits} asked for"))
        }
        Some(bits) => bits,
        None if asked_server_bits < MAX_WINDOW_BITS => {
            return Err(format!("server_max_window_bits={asked_server_bits} was asked for and is missing"))
        }
        None => MAX_WINDOW_BITS,
    };
    let offered_client_bits = clamp_window_bits(config.client_max_window_bits);
    let client_max_window_bits = match answer.client_max_window_bits {
        // 7.1.2.2: the server may only lower what we offered.
        ClientWindowBits::Value(bits) if bits > offered_client_bits => {
            return Err(format!("client_max_window_bits={bits} is larger than the {offered_client_bits} offered"))
        }
        ClientWindowBits::Value(bits) => bits,
        ClientWindowBits::Absent | ClientWindowBits::WithoutValue => offered_client_bits,
    };
    Ok(DeflateParams {
        server_no_context_takeover: answer.server_no_context_takeover,
        client_no_context_takeover: config.client_no_context_takeover || answer.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    })
}

/// Who wrote a permessage-deflate element: a client's offer or a server's answer (only an offer
/// may carry `client_max_window_bits` without a value).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// A client's offer.
    Client,
    /// A server's answer.
    Server,
}

/// How `client_max_window_bits` appears in an offer or answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientWindowBits {
    /// Not present.
    Absent,
    /// Present without a value (an offer: "you may limit my window").
    WithoutValue,
    /// Present with this value.
    Value(u8),
}

/// The parameters of one permessage-deflate element, each known, given at most once and valid.
#[derive(Debug, PartialEq, Eq)]
struct DeflateParamSet {
    /// `server_no_context_takeover` is present.
    server_no_context_takeover: bool,
    /// `client_no_context_takeover` is present.
    client_no_context_takeover: bool,
    /// `server_max_window_bits`' value, when present.
    server_max_window_bits: Option<u8>,
    /// `client_max_window_bits`.
    client_max_window_bits: ClientWindowBits,
}

impl DeflateParamSet {
    /// The parameters of one element written by `sender`, or why they are unacceptable (RFC
    /// 7692 section 7: unknown names, duplicates and invalid values).
    fn parse(params: &[(String, Option<String>)], sender: Sender) -> Result<Self, String> {
        let mut set = DeflateParamSet {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: ClientWindowBits::Absent,
        };
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in params {
            let name = name.to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(format!("{name} is given twice"));
            }
            match (name.as_str(), value.as_deref()) {
                ("server_no_context_takeover", None) => set.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => set.client_no_context_takeover = true,
                ("server_max_window_bits", Some(value)) => set.server_max_window_bits = Some(window_bits(&name, value)?),
                ("client_max_window_bits", Some(value)) => {
                    set.client_max_window_bits = ClientWindowBits::Value(window_bits(&name, value)?)
                }
                ("client_max_window_bits", None) if sender == Sender::Client => {
                    set.client_max_window_bits = ClientWindowBits::WithoutValue
                }
                ("server_no_context_takeover" | "client_no_context_takeover", Some(value)) => {
                    return Err(format!("{name} takes no value (has '{value}')"))
                }
                ("server_max_window_bits" | "client_max_window_bits", None) => return Err(format!("{name} needs a value")),
                _ => return Err(format!("unknown parameter '{name}'")),
            }
            seen.push(name);
        }
        Ok(set)
    }
}

/// A window-bits value: a decimal 8..=15 without leading zeros (RFC 7692 section 7.1.2).
fn window_bits(name: &str, value: &str) -> Result<u8, String> {
    match value.parse::<u8>() {
        Ok(bits) if (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) && !value.starts_with('0') && !value.starts_with('+') => {
            Ok(bits)
        }
        _ => Err(format!("{name}={value} is not 8..15")),
    }
}

/// One element of an extension list: its token and its parameters in order, values unquoted.
#[derive(Debug, PartialEq, Eq)]
struct ExtensionElement {
    /// The extension token as written.
    name: String,
    /// `(name, value)` pairs; `None` for a parameter without `=`.
    params: Vec<(String, Option<String>)>,
}

/// The elements of one `Sec-WebSocket-Extensions` value, or what is malformed in it.
fn parse_extension_list(value: &str) -> Result<Vec<ExtensionElement>, String> {
    let mut cursor = Cursor { text: value, pos: 0 };
    let mut elements = Vec::new();
    loop {
        cursor.skip_whitespace();
        match cursor.peek() {
            None => return Ok(elements),
            Some(b',') => {
                cursor.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = cursor.token().ok_or_else(|| cursor.unexpected("an extension name"))?;
        let mut element = ExtensionElement { name: name.to_string(), params: Vec::new() };
        loop {
            cursor.skip_whitespace();
            match cursor.peek() {
                None => break,
                Some(b',') => {
                    cursor.pos += 1;
                    break;
                }
                Some(b';') => {
                    cursor.pos += 1;
                    cursor.skip_whitespace();
                    let param = cursor.token().ok_or_else(|| cursor.unexpected("a parameter name"))?.to_string();
                    cursor.skip_whitespace();
                    let mut param_value = None;
                    if cursor.peek() == Some(b'=') {
                        cursor.pos += 1;
                        cursor.skip_whitespace();
                        param_value = Some(cursor.param_value()?);
                    }
                    element.params.push((param, param_value));
                }
                Some(_) => return Err(cursor.unexpected("';' or ','")),
            }
        }
        elements.push(element);
    }
}

/// A read position in a header value.
struct Cursor<'a> {
    /// The header value.
    text: &'a str,
    /// Byte offset of the next unread byte.
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next unread byte.
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips optional whitespace (spaces and tabs).
    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// The token at the position (one or more `tchar`s), if any.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        // The bounds are ASCII bytes, so `get` cannot miss; an empty token is none.
        self.text.get(start..self.pos).filter(|token| !token.is_empty())
    }

    /// A parameter value: a token, or a quoted-string whose content must be a token (RFC 6455
    /// section 9.1).
    fn param_value(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return self.token().map(str::to_string).ok_or_else(|| self.unexpected("a parameter value"));
        }
        self.pos += 1;
        let mut content = Vec::new();
        loop {
            match self.peek() {
                None => return Err("a quoted value is not closed".into()),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let escaped = self.text.as_bytes().get(self.pos + 1).copied();
                    let Some(byte) = escaped else { return Err("a quoted value ends with '\\'".into()) };
                    content.push(byte);
                    self.pos += 2;
                }
                Some(byte) => {
                    content.push(byte);
                    self.pos += 1;
                }
            }
        }
        match String::from_utf8(content) {
            Ok(value) if !value.is_empty() && value.bytes().all(is_tchar) => Ok(value),
            Ok(value) => Err(format!("quoted value \"{value}\" is not a token")),
            Err(_) => Err("a quoted value is not a token".into()),
        }
    }

    /// The error for finding something else than `expected` at the position.
    fn unexpected(&self, expected: &str) -> String {
        match self.text.get(self.pos..).and_then(|rest| rest.chars().next()) {
            Some(found) => format!("expected {expected} at byte {}, found '{found}'", self.pos),
            None => format!("expected {expected} at the end"),
        }
    }
}

/// Whether `byte` may appear in an HTTP token (RFC 7230 `tchar`).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's agreement and answer for `offers` with `config`.
    fn answer(config: &DeflateConfig, offers: &[&str]) -> Option<(DeflateParams, String)> {
        match server_answer(config, offers) {
            Ok(answer) => answer,
            Err(err) => panic!("{offers:?} is well-formed: {err}"),
        }
    }

    /// Settings that keep every context and full windows (RFC 7692's defaults).
    fn full() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            ..DeflateConfig::default()
        }
    }

    /// Parameters with both contexts kept and the given windows.
    fn takeover(server_max_window_bits: u8, client_max_window_bits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits,
            client_max_window_bits,
        }
    }

    #[test]
    fn list_grammar() {
        let elements = parse_extension_list(" , permessage-deflate ;a= \"10\"; b , x-foo;c=d,, ").map_err(|e| e.to_string());
        assert_eq!(
            elements,
            Ok(vec![
                ExtensionElement {
                    name: "permessage-deflate".into(),
                    params: vec![("a".into(), Some("10".into())), ("b".into(), None)]
                },
                ExtensionElement { name: "x-foo".into(), params: vec![("c".into(), Some("d".into()))] },
            ])
        );
        assert_eq!(parse_extension_list(""), Ok(vec![]));
        for malformed in [
            "permessage-deflate; a=\"1 0\"",
            "permessage-deflate; a=\"10",
            "permessage-deflate; =1",
            "permessage-deflate a",
            "permessage-deflate; a=",
            "permessage-deflate; a=\"\"",
            "permessage-deflate; a=\"\\",
            "permess@ge",
            "pmd; a=é",
        ] {
            assert!(parse_extension_list(malformed).is_err(), "{malformed:?} is malformed");
        }
        assert_eq!(
            parse_extension_list("x; a=\"1\\0\"").map(|e| e[0].params.clone()),
            Ok(vec![("a".into(), Some("10".into()))]),
            "a quoted-pair stands for its character"
        );
    }

    /// Chromium offers `permessage-deflate; client_max_window_bits`.
    #[test]
    fn chromium_offer() {
        let config = DeflateConfig { client_max_window_bits: 12, ..full() };
        let (params, header) = answer(&config, &["permessage-deflate; client_max_window_bits"]).expect("accepted");
        assert_eq!(params, takeover(15, 12));
        assert_eq!(header, "permessage-deflate; client_max_window_bits=12");
        let (params, header) = answer(&full(), &["permessage-deflate; client_max_window_bits"]).expect("accepted");
        assert_eq!(params, takeover(15, 15));
        assert_eq!(header, "permessage-deflate");
    }

    /// Firefox offers `permessage-deflate` alone: the client's window cannot be limited.
    #[test]
    fn firefox_offer() {
        let config = DeflateConfig { client_max_window_bits: 10, server_max_window_bits: 12, ..full() };
        let (params, header) = answer(&config, &["permessage-deflate"]).expect("accepted");
        assert_eq!(params, takeover(12, 15));
        assert_eq!(header, "permessage-deflate; server_max_window_bits=12");
    }

    /// Python websockets offers `permessage-deflate; client_max_window_bits` by default (and
    /// Node's ws the same, or with values).
    #[test]
    fn python_offers() {
        let (params, header) = answer(&DeflateConfig::default(), &["permessage-deflate; client_max_window_bits"]).expect("accepted");
        assert!(params.server_no_context_takeover && params.client_no_context_takeover, "the defaults keep no context");
        assert_eq!(header, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        let offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9";
        let (params, header) = answer(&full(), &[offer]).expect("accepted");
        assert_eq!(
            params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 9
            }
        );
        assert_eq!(header, offer, "every parameter is agreed as offered");
    }

    /// An offer of `server_max_window_bits=15` is answered with it, as RFC 7692 7.1.2.1 requires
    /// (Python's client checks); a larger limit than ours is lowered.
    #[test]
    fn server_window_answered() {
        let (_, header) = answer(&full(), &["permessage-deflate; server_max_window_bits=15"]).expect("accepted");
        assert_eq!(header, "permessage-deflate; server_max_window_bits=15");
        let config = DeflateConfig { server_max_window_bits: 9, ..full() };
        let (params, header) = answer(&config, &["permessage-deflate; server_max_window_bits=12"]).expect("accepted");
        assert_eq!(params.server_max_window_bits, 9);
        assert_eq!(header, "permessage-deflate; server_max_window_bits=9");
        let (params, _) = answer(&full(), &["permessage-deflate; server_max_window_bits=8"]).expect("8 bits are accepted");
        assert_eq!(params.server_max_window_bits, 8);
    }

    /// The first acceptable offer wins, across elements and header values; unacceptable ones
    /// (unknown, repeated or invalid parameters) are declined, and other extensions skipped.
    #[test]
    fn first_acceptable_offer() {
        let offers = [
            "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=16",
            "PerMessage-Deflate; server_max_window_bits=10; mystery, permessage-deflate; server_max_window_bits=11",
            "permessage-deflate; server_max_window_bits=12",
        ];
        let (params, header) = answer(&full(), &offers).expect("accepted");
        assert_eq!(params.server_max_window_bits, 11);
        assert_eq!(header, "permessage-deflate; server_max_window_bits=11");
        let (params, _) = answer(&full(), &["PERMESSAGE-DEFLATE; Server_Max_Window_Bits=\"9\""]).expect("case-insensitive");
        assert_eq!(params.server_max_window_bits, 9);
    }

    /// Offers the server declines: nothing acceptable means no compression.
    #[test]
    fn unacceptable_offers() {
        for offer in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; unknown",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(answer(&full(), &[offer]), None, "{offer} is declined");
        }
        assert_eq!(answer(&full(), &[]), None);
        let off = DeflateConfig { enabled: false, ..full() };
        assert_eq!(answer(&off, &["permessage-deflate"]), None, "compression off");
        assert!(server_answer(&full(), &["permessage-deflate; a=\"b"]).is_err(), "malformed header");
    }

    /// The server imposes its settings on the agreement.
    #[test]
    fn server_settings_imposed() {
        let config = DeflateConfig { server_no_context_takeover: true, client_no_context_takeover: true, ..full() };
        let (params, header) = answer(&config, &["permessage-deflate"]).expect("accepted");
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);
        assert_eq!(header, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    }

    /// What our client offers for each setting.
    #[test]
    fn client_offers() {
        assert_eq!(client_offer(&full()).as_deref(), Some("permessage-deflate; client_max_window_bits"));
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..full()
        };
        assert_eq!(
            client_offer(&config).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12")
        );
        assert_eq!(client_offer(&DeflateConfig { enabled: false, ..full() }), None);
    }

    /// Answers a client accepts.
    #[test]
    fn client_accepts() {
        assert_eq!(client_accept(&full(), None).ok(), Some(None), "no answer: no compression");
        assert_eq!(client_accept(&full(), Some("")).ok(), Some(None), "an empty answer: no compression");
        assert_eq!(client_accept(&full(), Some("permessage-deflate")).ok(), Some(Some(takeover(15, 15))));
        // The server may lower both windows and add either no-context-takeover.
        let answer = "Permessage-Deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=\"10\"";
        assert_eq!(
            client_accept(&full(), Some(answer)).ok(),
            Some(Some(DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 9,
                client_max_window_bits: 10
            }))
        );
        // What we offered holds when the answer leaves it out.
        let config = DeflateConfig { client_no_context_takeover: true, client_max_window_bits: 11, ..full() };
        assert_eq!(
            client_accept(&config, Some("permessage-deflate")).ok(),
            Some(Some(DeflateParams { client_no_context_takeover: true, ..takeover(15, 11) }))
        );
        let config = DeflateConfig { server_max_window_bits: 12, ..full() };
        assert_eq!(
            client_accept(&config, Some("permessage-deflate; server_max_window_bits=12")).ok(),
            Some(Some(takeover(12, 15)))
        );
    }

    /// Answers that must fail the connection, each with a clear reason.
    #[test]
    fn client_rejects() {
        let asked = DeflateConfig { server_no_context_takeover: true, server_max_window_bits: 10, client_max_window_bits: 12, ..full() };
        let ok = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
        assert!(client_accept(&asked, Some(ok)).is_ok());
        for (answer, reason) in [
            ("x-foo", "extension 'x-foo', which was not offered"),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10, permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
                "twice",
            ),
            ("permessage-deflate; server_max_window_bits=10", "server_no_context_takeover was asked for and is missing"),
            ("permessage-deflate; server_no_context_takeover", "server_max_window_bits=10 was asked for and is missing"),
            ("permessage-deflate; server_no_context_takeover; server_max_window_bits=11", "larger than the 10 asked for"),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=13",
                "larger than the 12 offered",
            ),
            ("permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits", "needs a value"),
            ("permessage-deflate; server_no_context_takeover; server_max_window_bits=10; x=1", "unknown parameter 'x'"),
            ("permessage-deflate; server_no_context_takeover; server_no_context_takeover; server_max_window_bits=10", "twice"),
            ("permessage-deflate; server_no_context_takeover; server_max_window_bits=99", "server_max_window_bits=99 is not 8..15"),
            ("permessage-deflate; server_no_context_takeover; server_max_window_bits=\"10", "malformed"),
        ] {
            match client_accept(&asked, Some(answer)) {
                Err(Error::Protocol(text)) => assert!(text.contains(reason), "{answer}: '{text}' says {reason}"),
                other => panic!("{answer} must fail the connection, got {other:?}"),
            }
        }
        let off = DeflateConfig { enabled: false, ..full() };
        assert!(client_accept(&off, Some("permessage-deflate")).is_err(), "nothing was offered");
    }

    /// For every setting, our client's offer is accepted by our server and the client agrees to
    /// the same parameters.
    #[test]
    fn our_client_and_server_agree() {
        let mut client = full();
        let mut server = full();
        for bits in [8, 9, 12, 15] {
            for flags in 0..16u8 {
                client.server_no_context_takeover = flags & 1 != 0;
                client.client_no_context_takeover = flags & 2 != 0;
                server.server_no_context_takeover = flags & 4 != 0;
                server.client_no_context_takeover = flags & 8 != 0;
                client.server_max_window_bits = bits;
                server.client_max_window_bits = 23 - bits;
                let offer = client_offer(&client).expect("offer");
                let (server_params, header) = answer(&server, &[&offer]).expect("accepted");
                let client_params = client_accept(&client, Some(&header)).map_err(|e| e.to_string());
                assert_eq!(client_params, Ok(Some(server_params)), "{offer} -> {header}");
            }
        }
    }
}
