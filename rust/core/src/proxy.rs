//! Reverse proxies in front of the server: which peers are believed about who the client is
//! ([`TrustedProxies`], the `trusted_proxies` setting), and the two ways they tell it: a PROXY
//! protocol header (HAProxy's v1 text line or v2 binary block, see haproxy's
//! `doc/proxy-protocol.txt`) before the HTTP request, and the `Forwarded` (RFC 7239) or
//! `X-Forwarded-For` request headers. Pure parsing and matching, no I/O: the connection calls
//! these with the bytes and headers it has, and only for a peer in `TrustedProxies`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// ::ffff:0:0, the start of the IPv4-mapped IPv6 range (::ffff:0:0/96).
const IPV4_MAPPED: u128 = 0xffff << 32;

/// One `trusted_proxies` entry as a range of the IPv6 address space; an IPv4 entry a.b.c.d/n is
/// kept as the mapped range ::ffff:a.b.c.d/(96 + n), so both families share one comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AddressRange {
    /// The range's first address (its host bits cleared).
    network: u128,
    /// How many leading bits an address shares with `network` to be in the range (0..=128).
    prefix: u32,
}

impl AddressRange {
    /// Whether `address` (a point of the IPv6 space) lies in the range.
    fn contains(&self, address: u128) -> bool {
        self.prefix == 0 || (self.network ^ address) >> (128 - self.prefix) == 0
    }

    /// Whether the range lies inside ::ffff:0:0/96, that is holds IPv4 addresses only.
    fn is_ipv4(&self) -> bool {
        self.prefix >= 96 && self.network >> 32 == 0xffff
    }
}

/// The mask that keeps the first `prefix` bits of an address (`prefix` at most 128).
fn network_mask(prefix: u32) -> u128 {
    u128::MAX.checked_shl(128 - prefix).unwrap_or(0)
}

/// `ip` as a point of the IPv6 space (an IPv4 address as its mapped form), and whether it is an
/// IPv4 address (written as one, or mapped).
fn address_point(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (IPV4_MAPPED | u128::from(u32::from(v4)), true),
        IpAddr::V6(v6) => (u128::from(v6), v6.to_ipv4_mapped().is_some()),
    }
}

/// Parses one `trusted_proxies` entry: an address, or an address and a prefix length after '/'.
/// Host bits past the prefix are ignored ("10.1.2.3/8" is 10.0.0.0/8).
fn parse_range(entry: &str) -> Result<AddressRange, String> {
    let text = entry.trim();
    let fail = |why: &str| format!("trusted_proxies entry '{text}': {why}");
    if text.is_empty() {
        return Err(fail("empty"));
    }
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = address.parse().map_err(|_| fail("not an IPv4 or IPv6 address"))?;
    let (point, _) = address_point(ip);
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => bits,
        Some(digits) => {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail("the prefix length after '/' must be a decimal number"));
            }
            // Too many digits for a u32 is too long a prefix as well.
            let length = digits.parse::<u32>().unwrap_or(u32::MAX);
            if length > bits {
                return Err(fail(&format!("prefix longer than {bits} bits")));
            }
            length
        }
    };
    let prefix = if ip.is_ipv4() { prefix + 96 } else { prefix };
    Ok(AddressRange { network: point & network_mask(prefix), prefix })
}

/// Addresses and CIDR ranges whose forwarding information is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// The entries, in the order given.
    ranges: Vec<AddressRange>,
}

impl TrustedProxies {
    /// Parses entries such as "10.0.0.1", "10.0.0.0/8", "::1", "fd00::/8", "127.0.0.1/32"
    /// (whitespace trimmed). Err names the first bad entry and why (e.g. "trusted_proxies entry
    /// '10.0.0.0/33': prefix longer than 32 bits").
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let ranges = entries.iter().map(|entry| parse_range(entry.as_ref())).collect::<Result<_, _>>()?;
        Ok(TrustedProxies { ranges })
    }

    /// Whether there are no entries (nobody is believed).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `ip` is one of them. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, which a
    /// dual-stack listener reports for IPv4 clients) matches the IPv4 entries, and an IPv4
    /// address matches an entry written as ::ffff:a.b.c.d/n (n >= 96). IPv4 addresses, written
    /// either way, match no other IPv6 entry (not even ::/0), so that they are judged alike on
    /// IPv4 and dual-stack listeners.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (point, is_ipv4) = address_point(ip);
        self.ranges.iter().any(|range| (!is_ipv4 || range.is_ipv4()) && range.contains(point))
    }
}

/// What the first bytes of a connection from a trusted proxy hold when the PROXY protocol is on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ProxyHeader {
    /// Not enough bytes yet to know (read more and call again with all bytes so far).
    Incomplete,
    /// A complete header of `len` bytes (the HTTP request starts after them); `source` is the
    /// client's address, or None when the header says LOCAL (v2) or UNKNOWN (v1) or carries an
    /// address family we do not use (AF_UNIX, UNSPEC): then the socket's own address stands.
    Complete { len: usize, source: Option<SocketAddr> },
}

/// The most bytes a PROXY header may take (v1: 107; v2: 16 plus the length it gives, capped
/// by this); the caller reads at most this many before the HTTP request.
pub(crate) const MAX_PROXY_HEADER: usize = 4096;

/// The longest v1 line, CRLF included ("PROXY UNKNOWN" and two full IPv6 addresses and ports).
const V1_MAX_LINE: usize = 107;

/// The 12 bytes a v2 header starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The size of the fixed part of a v2 header: signature, version and command, family and
/// protocol, address length.
const V2_FIXED: usize = 16;

/// Parses a PROXY protocol v1 (text) or v2 (binary) header at the start of `buf`.
/// Err(reason) when the bytes cannot be one (wrong signature, v1 line longer than 107 bytes or
/// malformed, v2 bad version/command/length, a v2 header longer than `MAX_PROXY_HEADER`,
/// addresses that do not parse). Decides "not a PROXY header" as early as the bytes allow: a
/// plain "GET / HTTP/1.1" fails on its first byte, a v1 line on its first byte out of place.
pub(crate) fn parse_proxy_header(buf: &[u8]) -> Result<ProxyHeader, String> {
    match buf.first() {
        None => Ok(ProxyHeader::Incomplete),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(not_a_header(buf)),
    }
}

/// The error for bytes that are no PROXY header, quoting how they start.
fn not_a_header(buf: &[u8]) -> String {
    let start = &buf[..buf.len().min(24)];
    format!("no PROXY protocol header: the connection starts with \"{}\"", start.escape_ascii())
}

/// What a v1 line starts with.
const V1_START: &[u8; 6] = b"PROXY ";

/// The v1 protocol names.
const V1_PROTOCOLS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];

/// A PROXY protocol v1 line: "PROXY TCP4|TCP6 source destination source-port destination-port",
/// single spaces, CRLF; or "PROXY UNKNOWN", anything, CRLF.
fn parse_v1(buf: &[u8]) -> Result<ProxyHeader, String> {
    let seen = buf.len().min(V1_START.len());
    if buf[..seen] != V1_START[..seen] {
        return Err(not_a_header(buf));
    }
    let window = &buf[..buf.len().min(V1_MAX_LINE)];
    let crlf = window.windows(2).position(|pair| pair == b"\r\n");
    // The line so far: up to its CRLF, or all that came (less a last CR that may start the CRLF).
    let line = match crlf {
        Some(end) => &window[..end],
        None => window.strip_suffix(b"\r").unwrap_or(window),
    };
    if line.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(format!("PROXY protocol v1 line with a CR or LF alone: \"{}\"", window.escape_ascii()));
    }
    let complete = crlf.is_some();
    let fail = |why: &str| Err(format!("PROXY protocol v1 line {why}: \"{}\"", window.escape_ascii()));
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    // Whether field `i` is whole (the last one of a line without its CRLF yet may grow).
    let whole = |i: usize| complete || i + 1 < fields.len();
    let mut ipv6 = false;
    for (i, &field) in fields.iter().enumerate() {
        let ok = match i {
            // "PROXY", or the start of it (checked above).
            0 => true,
            1 if whole(i) && field == b"UNKNOWN" => {
                // The receiver ignores whatever follows UNKNOWN up to the CRLF.
                return match crlf {
                    Some(end) => Ok(ProxyHeader::Complete { len: end + 2, source: None }),
                    None if buf.len() >= V1_MAX_LINE => fail("without CRLF in its first 107 bytes"),
                    None => Ok(ProxyHeader::Incomplete),
                };
            }
            1 if whole(i) => {
                ipv6 = field == b"TCP6";
                field == b"TCP4" || ipv6
            }
            1 => V1_PROTOCOLS.iter().any(|name| name.starts_with(field)),
            2 | 3 if whole(i) => v1_address(field, ipv6).is_some(),
            2 | 3 => v1_address_start(field, ipv6),
            4 | 5 if whole(i) => v1_port(field).is_some(),
            4 | 5 => v1_port_start(field),
            _ => return fail("with more than six fields"),
        };
        if !ok {
            return fail(match i {
                1 => "with an unknown protocol",
                2 => "with a bad source address",
                3 => "with a bad destination address",
                4 => "with a bad source port",
                _ => "with a bad destination port",
            });
        }
    }
    let Some(end) = crlf else {
        return if buf.len() >= V1_MAX_LINE { fail("without CRLF in its first 107 bytes") } else { Ok(ProxyHeader::Incomplete) };
    };
    if fields.len() < 6 {
        return fail("with fewer than six fields");
    }
    let source = fields.get(2).and_then(|field| v1_address(field, ipv6));
    match (source, fields.get(4).and_then(|field| v1_port(field))) {
        (Some(ip), Some(port)) => Ok(ProxyHeader::Complete { len: end + 2, source: Some(SocketAddr::new(ip, port)) }),
        _ => fail("malformed"),
    }
}

/// A whole v1 address of the line's family: IPv4 as four decimal numbers without leading zeros,
/// IPv6 in hexadecimal groups (no dotted IPv4 tail).
fn v1_address(field: &[u8], ipv6: bool) -> Option<IpAddr> {
    let text = std::str::from_utf8(field).ok()?;
    if ipv6 {
        if !field.iter().all(|&b| b.is_ascii_hexdigit() || b == b':') {
            return None;
        }
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        // std refuses leading zeros in IPv4 numbers, as the PROXY protocol does.
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// Whether `field` can still become a v1 address of the line's family.
fn v1_address_start(field: &[u8], ipv6: bool) -> bool {
    if ipv6 {
        field.len() <= 39 && field.iter().all(|&b| b.is_ascii_hexdigit() || b == b':')
    } else {
        field.len() <= 15 && field.iter().all(|&b| b.is_ascii_digit() || b == b'.')
    }
}

/// A whole v1 port: 0..=65535 in decimal, without leading zeros.
fn v1_port(field: &[u8]) -> Option<u16> {
    if field.is_empty() || (field.len() > 1 && field[0] == b'0') || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Whether `field` can still become a v1 port.
fn v1_port_start(field: &[u8]) -> bool {
    field.is_empty() || v1_port(field).is_some()
}

/// A PROXY protocol v2 header: the signature, version 2 and a command (LOCAL or PROXY), the
/// address family and protocol, the address block's length (big-endian), the addresses, TLVs.
fn parse_v2(buf: &[u8]) -> Result<ProxyHeader, String> {
    let seen = buf.len().min(V2_SIGNATURE.len());
    if buf[..seen] != V2_SIGNATURE[..seen] {
        return Err(not_a_header(buf));
    }
    let Some(&version_command) = buf.get(12) else { return Ok(ProxyHeader::Incomplete) };
    if version_command >> 4 != 2 {
        return Err(format!("PROXY protocol v2 header of version {} (only 2 exists)", version_command >> 4));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        command => return Err(format!("PROXY protocol v2 header with unknown command {command}")),
    };
    let Some(&family_protocol) = buf.get(13) else { return Ok(ProxyHeader::Incomplete) };
    let (family, protocol) = (family_protocol >> 4, family_protocol & 0x0f);
    // LOCAL ignores the family byte altogether (health checks of the proxy itself).
    if !local && (family > 3 || protocol > 2) {
        return Err(format!("PROXY protocol v2 header with unknown family/protocol byte {family_protocol:#04x}"));
    }
    let Some(&[high, low]) = buf.get(14..V2_FIXED) else { return Ok(ProxyHeader::Incomplete) };
    let address_length = usize::from(u16::from_be_bytes([high, low]));
    let len = V2_FIXED + address_length;
    if len > MAX_PROXY_HEADER {
        return Err(format!("PROXY protocol v2 header of {len} bytes, more than the {MAX_PROXY_HEADER} accepted"));
    }
    // Source and destination addresses, then ports: AF_INET 2 * 4 + 2 * 2, AF_INET6 2 * 16 + 2 * 2,
    // AF_UNIX 2 * 108 bytes.
    let needed = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if !local && protocol != 0 && address_length < needed {
        return Err(format!("PROXY protocol v2 header of {address_length} address bytes, {needed} needed for its family"));
    }
    let Some(addresses) = buf.get(V2_FIXED..len) else { return Ok(ProxyHeader::Incomplete) };
    // What follows the addresses (TLVs: ALPN, authority, TLS details, cloud endpoint ids) is skipped.
    let source = if local || protocol == 0 {
        None
    } else {
        match family {
            1 => v2_source::<4>(addresses, 8).map(|(octets, port)| SocketAddr::new(Ipv4Addr::from(octets).into(), port)),
            2 => v2_source::<16>(addresses, 32).map(|(octets, port)| SocketAddr::new(Ipv6Addr::from(octets).into(), port)),
            _ => None,
        }
    };
    Ok(ProxyHeader::Complete { len, source })
}

/// The source address (the block's first `N` bytes) and the source port (two bytes at
/// `port_at`) of a v2 address block.
fn v2_source<const N: usize>(addresses: &[u8], port_at: usize) -> Option<([u8; N], u16)> {
    let octets = *addresses.first_chunk::<N>()?;
    let port = addresses.get(port_at..)?.first_chunk::<2>()?;
    Some((octets, u16::from_be_bytes(*port)))
}

/// The client's address given the forwarding headers of a request that came from a trusted
/// proxy. `forwarded` are the values of every `Forwarded` header (RFC 7239) in order,
/// `x_forwarded_for` those of every `X-Forwarded-For` header in order (several headers of one
/// name form one comma-separated list). `X-Forwarded-For` wins when a request has one: it is
/// what nginx, HAProxy (`option forwardfor`), cloud load balancers and CDNs set, and a client's
/// own `Forwarded` passes through them untouched, so believing it first would let any client
/// choose its address. `Forwarded` counts only without `X-Forwarded-For` (a proxy that sets
/// `Forwarded` must then drop a client's `X-Forwarded-For`). The chain is walked from the right (nearest hop): addresses in
/// `trusted` are skipped; the first one that is not trusted is the client. If every entry is
/// trusted, the left-most is the client. An entry that does not parse as an address
/// ("unknown", an obfuscated "_hidden" identifier, garbage) stops the walk: None (the caller
/// keeps the socket's address) rather than believing anything left of it. Ports are kept
/// (`for="[2001:db8::1]:4711"`, `for="192.0.2.60:47011"`, `203.0.113.7:5555`,
/// `[2001:db8::1]:80`); without one (or with an obfuscated one) the port is 0.
pub(crate) fn forwarded_client(forwarded: &[&str], x_forwarded_for: &[&str], trusted: &TrustedProxies) -> Option<SocketAddr> {
    let hops: Vec<Option<SocketAddr>> = x_forwarded_for
        .iter()
        .flat_map(|value| value.split(','))
        .map(|entry| entry.trim_matches(is_whitespace))
        .filter(|entry| !entry.is_empty())
        .map(|entry| parse_node(entry, false))
        .collect();
    if !hops.is_empty() {
        return client_in_chain(&hops, trusted);
    }
    let mut elements = Vec::new();
    for value in forwarded {
        forwarded_elements(value, &mut elements);
    }
    let hops: Vec<Option<SocketAddr>> = elements
        .iter()
        .filter_map(|element| match element {
            ForwardedElement::For(node) => Some(parse_node(node, true)),
            ForwardedElement::Malformed => Some(None),
            ForwardedElement::NoFor => None,
        })
        .collect();
    client_in_chain(&hops, trusted)
}

/// Walks `hops` (None: an entry that is no address) from the right: the first address not in
/// `trusted`, or the left-most when all are; None at the first entry that is no address, or
/// when there is none.
fn client_in_chain(hops: &[Option<SocketAddr>], trusted: &TrustedProxies) -> Option<SocketAddr> {
    let mut left_most = None;
    for hop in hops.iter().rev() {
        let address = (*hop)?;
        if !trusted.contains(address.ip()) {
            return Some(address);
        }
        left_most = Some(address);
    }
    left_most
}

/// One element of a `Forwarded` list, as far as the client's address goes.
#[derive(Debug, PartialEq, Eq)]
enum ForwardedElement {
    /// Its `for` parameter's value (unquoted).
    For(String),
    /// No `for` parameter (only `by`, `host`, `proto` or nothing).
    NoFor,
    /// Not RFC 7239 syntax (or a `for` given twice): nothing in it can be believed.
    Malformed,
}

/// Spaces and tabs (HTTP's optional whitespace).
fn is_whitespace(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Characters of an HTTP token (RFC 9110), such as a parameter name.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Appends the elements of one `Forwarded` header value (a comma-separated list; empty
/// elements are skipped) to `out`.
fn forwarded_elements(value: &str, out: &mut Vec<ForwardedElement>) {
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(is_whitespace);
        if rest.is_empty() {
            return;
        }
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
            continue;
        }
        let (element, after) = forwarded_element(rest);
        out.push(element);
        rest = after;
    }
}

/// The element at the start of `text` (";"-separated name=value pairs, up to a ',' outside
/// quotes or the end), and what follows its ','. Whitespace around ';', ',' and '=' is allowed.
fn forwarded_element(text: &str) -> (ForwardedElement, &str) {
    let mut rest = text;
    let mut for_value: Option<String> = None;
    loop {
        rest = rest.trim_start_matches(is_whitespace);
        if rest.is_empty() || rest.starts_with(',') {
            let element = for_value.map_or(ForwardedElement::NoFor, ForwardedElement::For);
            return (element, rest.strip_prefix(',').unwrap_or(rest));
        }
        if let Some(after) = rest.strip_prefix(';') {
            rest = after;
            continue;
        }
        let name_end = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
        let (name, after_name) = rest.split_at(name_end);
        let Some(after_equals) = after_name.trim_start_matches(is_whitespace).strip_prefix('=') else {
            return (ForwardedElement::Malformed, after_element(rest));
        };
        let Some((value, after_value)) = pair_value(after_equals.trim_start_matches(is_whitespace)) else {
            return (ForwardedElement::Malformed, after_element(after_equals));
        };
        let after_value = after_value.trim_start_matches(is_whitespace);
        let well_ended = after_value.is_empty() || after_value.starts_with([',', ';']);
        if name.is_empty() || !well_ended || (name.eq_ignore_ascii_case("for") && for_value.is_some()) {
            return (ForwardedElement::Malformed, after_element(after_value));
        }
        if name.eq_ignore_ascii_case("for") {
            for_value = Some(value);
        }
        rest = after_value;
    }
}

/// A pair's value at the start of `text`: a quoted string (backslash escapes the next
/// character) or a run of characters up to whitespace, ';' or ','; and what follows it. None
/// for an empty value or a quote that does not end.
fn pair_value(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => return Some((value, &quoted[at + 1..])),
                '\\' => value.push(chars.next()?.1),
                c => value.push(c),
            }
        }
        return None;
    }
    let end = text.find(|c: char| is_whitespace(c) || c == ';' || c == ',' || c == '"').unwrap_or(text.len());
    (end > 0).then(|| (text[..end].to_string(), &text[end..]))
}

/// What follows the ',' that ends the element `text` is inside (quotes honoured); empty when
/// there is none.
fn after_element(text: &str) -> &str {
    let mut quoted = false;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                chars.next();
            }
            ',' if !quoted => return &text[at + 1..],
            _ => {}
        }
    }
    ""
}

/// A node: an IPv4 address, an IPv6 address (bare, or in brackets when a port follows), either
/// with ":port" or not (port 0). With `obfuscated_port`, an RFC 7239 obfuscated port
/// ("_abc") stands for 0. None for anything else ("unknown", "_hidden", garbage).
fn parse_node(node: &str, obfuscated_port: bool) -> Option<SocketAddr> {
    let parse_port = |text: &str| -> Option<u16> {
        if obfuscated_port && text.len() > 1 && text.starts_with('_') {
            return text[1..].bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)).then_some(0);
        }
        if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    if let Some(bracketed) = node.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']')?;
        let ip: Ipv6Addr = address.parse().ok()?;
        let port = if after.is_empty() { 0 } else { parse_port(after.strip_prefix(':')?)? };
        return Some(SocketAddr::new(ip.into(), port));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    let (address, port_text) = node.rsplit_once(':')?;
    let ip: Ipv4Addr = address.parse().ok()?;
    Some(SocketAddr::new(ip.into(), parse_port(port_text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        match TrustedProxies::parse(entries) {
            Ok(trusted) => trusted,
            Err(e) => panic!("{entries:?} should parse: {e}"),
        }
    }

    fn ip(text: &str) -> IpAddr {
        match text.parse() {
            Ok(ip) => ip,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn addr(text: &str) -> SocketAddr {
        match text.parse() {
            Ok(addr) => addr,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn complete(len: usize, source: Option<&str>) -> Result<ProxyHeader, String> {
        Ok(ProxyHeader::Complete { len, source: source.map(addr) })
    }

    /// The longest IPv6 address as text.
    const ALL_ONES: &str = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

    // ---- TrustedProxies ----

    #[test]
    fn entries_parse_and_errors_name_the_entry() {
        let parsed = trusted(&["10.0.0.1", " 10.0.0.0/8 ", "::1", "fd00::/8", "127.0.0.1/32", "0.0.0.0/0", "::/0"]);
        assert_eq!(parsed.ranges.len(), 7);
        assert!(!parsed.is_empty());
        assert!(TrustedProxies::parse::<&str>(&[]).is_ok_and(|t| t.is_empty()));
        assert!(TrustedProxies::default().is_empty());
        let error = |entry: &str| TrustedProxies::parse(&["10.0.0.1", entry]).err().unwrap_or_default();
        assert_eq!(error("10.0.0.0/33"), "trusted_proxies entry '10.0.0.0/33': prefix longer than 32 bits");
        assert_eq!(error("fd00::/129"), "trusted_proxies entry 'fd00::/129': prefix longer than 128 bits");
        assert_eq!(error("10.0.0.0/99999999999"), "trusted_proxies entry '10.0.0.0/99999999999': prefix longer than 32 bits");
        assert_eq!(error(" "), "trusted_proxies entry '': empty");
        assert_eq!(error("10.0.0.256"), "trusted_proxies entry '10.0.0.256': not an IPv4 or IPv6 address");
        for bad in ["10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/8a"] {
            assert!(error(bad).contains("the prefix length after '/' must be a decimal number"), "{bad}: {}", error(bad));
        }
        for bad in ["localhost", "10.0.0", "010.0.0.1", "10.0.0.1:80", "[::1]", "fe80::1%eth0", "10.0.0.0 /8", "/8"] {
            assert!(error(bad).contains("not an IPv4 or IPv6 address"), "{bad}: {}", error(bad));
        }
    }

    #[test]
    fn ipv4_ranges_match_at_their_boundaries() {
        let t = trusted(&["10.0.0.0/8", "192.168.1.128/25", "203.0.113.7/32", "198.51.100.9"]);
        for inside in ["10.0.0.0", "10.255.255.255", "192.168.1.128", "192.168.1.255", "203.0.113.7", "198.51.100.9"] {
            assert!(t.contains(ip(inside)), "{inside}");
        }
        for outside in ["9.255.255.255", "11.0.0.0", "192.168.1.127", "192.168.2.128", "203.0.113.6", "203.0.113.8", "::1"] {
            assert!(!t.contains(ip(outside)), "{outside}");
        }
        // Host bits past the prefix are ignored.
        assert!(trusted(&["10.1.2.3/8"]).contains(ip("10.200.0.1")));
        let everyone = trusted(&["0.0.0.0/0"]);
        assert!(everyone.contains(ip("0.0.0.0")) && everyone.contains(ip("255.255.255.255")));
        assert!(everyone.contains(ip("::ffff:1.2.3.4")));
        assert!(!everyone.contains(ip("2001:db8::1")), "an IPv4 range holds no IPv6 address");
    }

    #[test]
    fn ipv6_ranges_match_at_their_boundaries() {
        let t = trusted(&["fd00::/8", "2001:db8::/32", "2001:db8:ffff::1/128", "::1"]);
        for inside in ["fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::", "2001:db8:ffff:ffff::1", "::1"] {
            assert!(t.contains(ip(inside)), "{inside}");
        }
        for outside in ["fc00::1", "fe00::", "2001:db9::", "2001:db7:ffff::", "::2", "::", "127.0.0.1"] {
            assert!(!t.contains(ip(outside)), "{outside}");
        }
        let one = trusted(&["2001:db8::5/128"]);
        assert!(one.contains(ip("2001:db8::5")) && !one.contains(ip("2001:db8::4")) && !one.contains(ip("2001:db8::6")));
        let odd = trusted(&["2001:db8:0:1::/63"]);
        assert!(odd.contains(ip("2001:db8::1")) && odd.contains(ip("2001:db8:0:1::1")) && !odd.contains(ip("2001:db8:0:2::")));
        let everyone = trusted(&["::/0"]);
        assert!(everyone.contains(ip("::")) && everyone.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        // IPv4 clients are judged alike on IPv4 and dual-stack listeners: ::/0 holds neither form.
        assert!(!everyone.contains(ip("10.0.0.1")) && !everyone.contains(ip("::ffff:10.0.0.1")));
        assert!(!trusted(&["::ffff:0:0/95"]).contains(ip("10.0.0.1")));
    }

    #[test]
    fn mapped_addresses_match_ipv4_entries_and_back() {
        let v4 = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        assert!(v4.contains(ip("::ffff:10.1.2.3")) && v4.contains(ip("::ffff:127.0.0.1")));
        assert!(!v4.contains(ip("::ffff:11.0.0.0")) && !v4.contains(ip("::ffff:127.0.0.2")));
        // Not mapped: 10.1.2.3 written as IPv4-compatible (deprecated) or inside another prefix.
        assert!(!v4.contains(ip("::10.1.2.3")) && !v4.contains(ip("64:ff9b::10.1.2.3")));
        let mapped = trusted(&["::ffff:10.0.0.0/104", "::ffff:192.0.2.1"]);
        assert!(mapped.contains(ip("10.9.9.9")) && mapped.contains(ip("::ffff:10.9.9.9")) && mapped.contains(ip("192.0.2.1")));
        assert!(!mapped.contains(ip("11.0.0.0")) && !mapped.contains(ip("192.0.2.2")));
        let all_v4 = trusted(&["::ffff:0:0/96"]);
        assert!(all_v4.contains(ip("1.2.3.4")) && all_v4.contains(ip("255.255.255.255")) && !all_v4.contains(ip("::1")));
    }

    // ---- PROXY protocol v1 ----

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(parse_proxy_header(line), complete(47, Some("192.168.0.1:56324")));
        let line = b"PROXY TCP6 2001:db8::1 2001:DB8::2 65535 0\r\n";
        assert_eq!(parse_proxy_header(line), complete(line.len(), Some("[2001:db8::1]:65535")));
        let longest = format!("PROXY TCP6 {ALL_ONES} {ALL_ONES} 65535 65535\r\n");
        assert_eq!(longest.len(), 104);
        assert_eq!(parse_proxy_header(longest.as_bytes()), complete(104, Some(&format!("[{ALL_ONES}]:65535"))));
        let line = b"PROXY TCP4 255.255.255.255 0.0.0.0 0 65535\r\n";
        assert_eq!(parse_proxy_header(line), complete(line.len(), Some("255.255.255.255:0")));
        assert_eq!(parse_proxy_header(b"PROXY UNKNOWN\r\nGET"), complete(15, None));
        let worst = format!("PROXY UNKNOWN {ALL_ONES} {ALL_ONES} 65535 65535\r\n");
        assert_eq!(worst.len(), 107);
        assert_eq!(parse_proxy_header(worst.as_bytes()), complete(107, None));
        // Whatever follows UNKNOWN is ignored.
        assert_eq!(parse_proxy_header(b"PROXY UNKNOWN whatever \xff\r\n"), complete(26, None));
    }

    #[test]
    fn v1_every_prefix_is_incomplete() {
        let worst = format!("PROXY UNKNOWN {ALL_ONES} {ALL_ONES} 65535 65535\r\n");
        let lines: [&[u8]; 4] = [
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            b"PROXY TCP6 2001:db8::1 ::1 1 10000\r\n",
            b"PROXY UNKNOWN\r\n",
            worst.as_bytes(),
        ];
        for line in lines {
            for end in 0..line.len() {
                assert_eq!(parse_proxy_header(&line[..end]), Ok(ProxyHeader::Incomplete), "{}", line[..end].escape_ascii());
            }
            let mut with_request = line.to_vec();
            with_request.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            let Ok(ProxyHeader::Complete { len, .. }) = parse_proxy_header(&with_request) else { panic!("complete") };
            assert_eq!(len, line.len());
        }
    }

    #[test]
    fn v1_malformed_lines_fail() {
        let bad: [&[u8]; 26] = [
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 65536\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 +1 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 1x 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",
            b"PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",
            b"PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 7\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11\r\n",
            b"PROXY TCP4\r\n",
            b"PROXY \r\n",
            b"PROXY\r\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\r\n",
            b"PROXY TCP4 192.168.000.1 192.168.0.11 56324 443\r\n",
            b"PROXY TCP4 192.168.0 192.168.0.11 56324 443\r\n",
            b"PROXY TCP4 256.168.0.1 192.168.0.11 56324 443\r\n",
            b"PROXY TCP4 2001:db8::1 192.168.0.11 56324 443\r\n",
            b"PROXY TCP6 192.168.0.1 2001:db8::1 56324 443\r\n",
            b"PROXY TCP6 ::ffff:192.168.0.1 2001:db8::1 56324 443\r\n",
            b"PROXY TCP6 2001:db8::1 2001:db8::g 1 2\r\n",
            b"PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            b"PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n",
            b"PROXY UNKNOWNX\r\n",
        ];
        for line in bad {
            assert!(parse_proxy_header(line).is_err(), "{}", line.escape_ascii());
        }
    }

    #[test]
    fn v1_without_crlf_in_107_bytes_fails() {
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(105, b'a');
        long.extend_from_slice(b"\r\n");
        assert_eq!(parse_proxy_header(&long), complete(107, None));
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(106, b'a');
        assert_eq!(parse_proxy_header(&long), Ok(ProxyHeader::Incomplete));
        long.push(b'\r');
        let error = parse_proxy_header(&long).err().unwrap_or_default();
        assert!(error.contains("without CRLF in its first 107 bytes"), "{error}");
        long.push(b'\n');
        assert!(parse_proxy_header(&long).is_err());
    }

    #[test]
    fn v1_fails_as_soon_as_a_byte_is_out_of_place() {
        // Each of these is the start of a longer bad line: no need to wait for its CRLF.
        let starts: [&[u8]; 11] = [
            b"PROXX",
            b"PROXY_",
            b"PROXY  ",
            b"PROXY TCP5",
            b"PROXY TCP4 192.168.0.1x",
            b"PROXY TCP4 1921681001234567",
            b"PROXY TCP6 2001:db8::1.",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
            b"PROXY TCP4 1.2.3.4\n",
        ];
        for start in starts {
            assert!(parse_proxy_header(start).is_err(), "{}", start.escape_ascii());
        }
        // "0" may be the whole port: only the byte after it decides.
        assert_eq!(parse_proxy_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 0"), Ok(ProxyHeader::Incomplete));
        assert_eq!(parse_proxy_header(b"PROXY TCP4 1.2.3.4 5.6.7.8 0 6553"), Ok(ProxyHeader::Incomplete));
    }

    #[test]
    fn plain_http_and_tls_fail_at_once() {
        for start in [&b"GET / HTTP/1.1\r\n"[..], b"G", b"POST", b"PUT", b"\x16\x03\x01", b"\0", b"proxy"] {
            let error = parse_proxy_header(start).err().unwrap_or_default();
            assert!(error.starts_with("no PROXY protocol header"), "{}: {error}", start.escape_ascii());
        }
        assert_eq!(parse_proxy_header(b""), Ok(ProxyHeader::Incomplete));
        assert_eq!(parse_proxy_header(b"P"), Ok(ProxyHeader::Incomplete));
        assert_eq!(parse_proxy_header(b"\r\n\r\n"), Ok(ProxyHeader::Incomplete));
        assert!(parse_proxy_header(b"\r\n\r\nGET").is_err());
    }

    // ---- PROXY protocol v2 ----

    /// A v2 header: signature, version/command byte, family/protocol byte, then `body` (its
    /// length written before it).
    fn v2(version_command: u8, family_protocol: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(version_command);
        header.push(family_protocol);
        header.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
        header.extend_from_slice(body);
        header
    }

    /// A TCP over IPv4 address block: 192.0.2.1:56324 to 198.51.100.2:443.
    const V4_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb];

    /// A TCP over IPv6 address block: [2001:db8::1]:4711 to [2001:db8::2]:80.
    fn v6_block() -> Vec<u8> {
        let mut block = Vec::new();
        block.extend_from_slice(&ip6("2001:db8::1").octets());
        block.extend_from_slice(&ip6("2001:db8::2").octets());
        block.extend_from_slice(&4711u16.to_be_bytes());
        block.extend_from_slice(&80u16.to_be_bytes());
        block
    }

    fn ip6(text: &str) -> Ipv6Addr {
        match text.parse() {
            Ok(ip) => ip,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    /// TLVs as an AWS NLB sends them (a VPC endpoint id, type 0xEA) and a NOOP.
    const TLVS: &[u8] = b"\xea\x00\x17\x01vpce-08d2bf15fefb6ba2f\x04\x00\x02\x00\x00";

    #[test]
    fn v2_proxy_ipv4_and_ipv6_with_and_without_tlvs() {
        let header = v2(0x21, 0x11, &V4_BLOCK);
        assert_eq!(parse_proxy_header(&header), complete(28, Some("192.0.2.1:56324")));
        let mut with_request = header.clone();
        with_request.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(parse_proxy_header(&with_request), complete(28, Some("192.0.2.1:56324")));
        let with_tlvs = v2(0x21, 0x11, &[&V4_BLOCK[..], TLVS].concat());
        assert_eq!(parse_proxy_header(&with_tlvs), complete(28 + TLVS.len(), Some("192.0.2.1:56324")));
        let header = v2(0x21, 0x21, &v6_block());
        assert_eq!(parse_proxy_header(&header), complete(52, Some("[2001:db8::1]:4711")));
        let with_tlvs = v2(0x21, 0x21, &[&v6_block()[..], TLVS].concat());
        assert_eq!(parse_proxy_header(&with_tlvs), complete(52 + TLVS.len(), Some("[2001:db8::1]:4711")));
        // UDP (DGRAM) addresses are addresses all the same.
        assert_eq!(parse_proxy_header(&v2(0x21, 0x12, &V4_BLOCK)), complete(28, Some("192.0.2.1:56324")));
    }

    #[test]
    fn v2_local_unspec_and_unix_leave_the_socket_address() {
        assert_eq!(parse_proxy_header(&v2(0x20, 0x00, &[])), complete(16, None));
        // LOCAL ignores whatever family and addresses it carries.
        assert_eq!(parse_proxy_header(&v2(0x20, 0x11, &V4_BLOCK)), complete(28, None));
        assert_eq!(parse_proxy_header(&v2(0x20, 0xff, &[1, 2, 3])), complete(19, None));
        assert_eq!(parse_proxy_header(&v2(0x21, 0x00, &[])), complete(16, None));
        assert_eq!(parse_proxy_header(&v2(0x21, 0x00, TLVS)), complete(16 + TLVS.len(), None));
        // A protocol UNSPEC with an address family: the address is ignored.
        assert_eq!(parse_proxy_header(&v2(0x21, 0x10, &V4_BLOCK)), complete(28, None));
        let unix = [b'/'; 216];
        assert_eq!(parse_proxy_header(&v2(0x21, 0x31, &unix)), complete(232, None));
        assert_eq!(parse_proxy_header(&v2(0x21, 0x32, &[&unix[..], TLVS].concat())), complete(232 + TLVS.len(), None));
    }

    #[test]
    fn v2_truncated_is_incomplete() {
        for header in [v2(0x21, 0x11, &V4_BLOCK), v2(0x21, 0x21, &[&v6_block()[..], TLVS].concat()), v2(0x20, 0x00, &[])] {
            for end in 0..header.len() {
                assert_eq!(parse_proxy_header(&header[..end]), Ok(ProxyHeader::Incomplete), "{end} of {}", header.len());
            }
            assert!(matches!(parse_proxy_header(&header), Ok(ProxyHeader::Complete { .. })));
        }
    }

    #[test]
    fn v2_bad_version_command_family_or_length_fails() {
        for version_command in [0x11, 0x31, 0x01, 0xf1, 0x22, 0x2f] {
            let header = v2(version_command, 0x11, &V4_BLOCK);
            assert!(parse_proxy_header(&header).is_err(), "{version_command:#x}");
            // Decided on that byte, before the rest arrives.
            assert!(parse_proxy_header(&header[..13]).is_err(), "{version_command:#x}");
        }
        for family_protocol in [0x41, 0x13, 0xf1, 0x1f] {
            let header = v2(0x21, family_protocol, &V4_BLOCK);
            assert!(parse_proxy_header(&header[..14]).is_err(), "{family_protocol:#x}");
        }
        // Address blocks too short for their family, told by the length field alone.
        for (family_protocol, length) in [(0x11, 11), (0x21, 35), (0x31, 215), (0x11, 0)] {
            let header = v2(0x21, family_protocol, &vec![0; length]);
            assert!(parse_proxy_header(&header[..16]).is_err(), "{family_protocol:#x} with {length}");
        }
        let mut bad_signature = v2(0x21, 0x11, &V4_BLOCK);
        bad_signature[11] = b'X';
        assert!(parse_proxy_header(&bad_signature[..12]).is_err());
    }

    #[test]
    fn v2_length_beyond_the_cap_fails_at_once() {
        let at_cap = v2(0x21, 0x11, &vec![0; MAX_PROXY_HEADER - 16]);
        assert!(matches!(parse_proxy_header(&at_cap), Ok(ProxyHeader::Complete { len: MAX_PROXY_HEADER, .. })));
        let over = v2(0x21, 0x11, &vec![0; MAX_PROXY_HEADER - 15]);
        let error = parse_proxy_header(&over[..16]).err().unwrap_or_default();
        assert_eq!(error, "PROXY protocol v2 header of 4097 bytes, more than the 4096 accepted");
        let mut huge = v2(0x21, 0x11, &V4_BLOCK);
        huge[14..16].copy_from_slice(&[0xff, 0xff]);
        assert!(parse_proxy_header(&huge).is_err());
    }

    // ---- Forwarded and X-Forwarded-For ----

    fn client(forwarded: &[&str], x_forwarded_for: &[&str], trusted_entries: &[&str]) -> Option<SocketAddr> {
        forwarded_client(forwarded, x_forwarded_for, &trusted(trusted_entries))
    }

    #[test]
    fn single_entries() {
        assert_eq!(client(&["for=192.0.2.60"], &[], &[]), Some(addr("192.0.2.60:0")));
        assert_eq!(client(&[], &["203.0.113.7"], &[]), Some(addr("203.0.113.7:0")));
        assert_eq!(client(&[], &["203.0.113.7:5555"], &[]), Some(addr("203.0.113.7:5555")));
        assert_eq!(client(&[], &["[2001:db8::1]:80"], &[]), Some(addr("[2001:db8::1]:80")));
        assert_eq!(client(&[], &["2001:db8::1"], &[]), Some(addr("[2001:db8::1]:0")));
        assert_eq!(client(&[], &[" \t2001:db8::1 "], &[]), Some(addr("[2001:db8::1]:0")));
        assert_eq!(client(&["for=\"192.0.2.60:47011\""], &[], &[]), Some(addr("192.0.2.60:47011")));
        assert_eq!(client(&["for=\"[2001:db8:cafe::17]:4711\""], &[], &[]), Some(addr("[2001:db8:cafe::17]:4711")));
        assert_eq!(client(&["for=\"[2001:db8:cafe::17]\""], &[], &[]), Some(addr("[2001:db8:cafe::17]:0")));
        assert_eq!(client(&["for=\"192.0.2.43:_hidden\""], &[], &[]), Some(addr("192.0.2.43:0")));
        assert_eq!(client(&["for=\"::ffff:192.0.2.43\""], &[], &[]), Some(addr("[::ffff:192.0.2.43]:0")));
        assert_eq!(client(&[], &[], &[]), None);
        assert_eq!(client(&[""], &[" , ,"], &[]), None);
    }

    #[test]
    fn forwarded_syntax() {
        let expected = Some(addr("192.0.2.60:0"));
        for value in [
            "For=192.0.2.60",
            "FOR=\"192.0.2.60\"",
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            "proto=http;for=192.0.2.60;by=203.0.113.43",
            " ; proto=https ;  for = 192.0.2.60 ; ",
            "host=\"a;b,c\";for=192.0.2.60",
            "for=\"192.0.2.\\60\"",
            "\tfor=192.0.2.60\t,",
        ] {
            assert_eq!(client(&[value], &[], &[]), expected, "{value}");
        }
        assert_eq!(client(&["for=\"[2001:db8::1]:4711\";proto=ws"], &[], &[]), Some(addr("[2001:db8::1]:4711")));
    }

    #[test]
    fn chains_skip_trusted_hops() {
        let proxies = ["10.0.0.0/8", "2001:db8:ffff::/48"];
        assert_eq!(client(&[], &["198.51.100.1, 203.0.113.9, 10.0.0.2, 10.0.0.1"], &proxies), Some(addr("203.0.113.9:0")));
        assert_eq!(
            client(&["for=198.51.100.1, for=\"[2001:db8::9]:1234\";proto=https, For=\"[2001:db8:ffff::1]\""], &[], &proxies),
            Some(addr("[2001:db8::9]:1234"))
        );
        // Nothing trusted: the nearest hop is the client.
        assert_eq!(client(&[], &["198.51.100.1, 203.0.113.9"], &[]), Some(addr("203.0.113.9:0")));
        // A dual-stack proxy reporting itself mapped.
        assert_eq!(client(&[], &["198.51.100.1, ::ffff:10.0.0.3"], &proxies), Some(addr("198.51.100.1:0")));
    }

    #[test]
    fn all_trusted_gives_the_left_most() {
        let proxies = ["10.0.0.0/8"];
        assert_eq!(client(&[], &["10.0.0.5:99, 10.0.0.2, 10.0.0.1"], &proxies), Some(addr("10.0.0.5:99")));
        assert_eq!(client(&["for=10.0.0.5;by=x", "for=10.0.0.1"], &[], &proxies), Some(addr("10.0.0.5:0")));
    }

    #[test]
    fn unknown_or_obfuscated_stops_the_walk() {
        let proxies = ["10.0.0.0/8"];
        assert_eq!(client(&[], &["198.51.100.1, unknown, 10.0.0.1"], &proxies), None);
        assert_eq!(client(&["for=198.51.100.1, for=unknown, for=10.0.0.1"], &[], &proxies), None);
        assert_eq!(client(&["for=198.51.100.1, for=_hidden, for=10.0.0.1"], &[], &proxies), None);
        assert_eq!(client(&["for=unknown"], &[], &[]), None);
        // Left of the client it does not matter.
        assert_eq!(client(&[], &["unknown, 203.0.113.9, 10.0.0.1"], &proxies), Some(addr("203.0.113.9:0")));
        assert_eq!(client(&["for=_abc, for=203.0.113.9"], &[], &proxies), Some(addr("203.0.113.9:0")));
        // All trusted up to an unknown entry: nothing is believed.
        assert_eq!(client(&[], &["unknown, 10.0.0.2, 10.0.0.1"], &proxies), None);
        // An obfuscated port is for Forwarded only.
        assert_eq!(client(&[], &["192.0.2.43:_hidden"], &[]), None);
    }

    #[test]
    fn several_header_lines_form_one_list() {
        let proxies = ["10.0.0.0/8"];
        assert_eq!(client(&[], &["198.51.100.1, 203.0.113.9", "10.0.0.2", "10.0.0.1"], &proxies), Some(addr("203.0.113.9:0")));
        assert_eq!(client(&[], &["198.51.100.1", "10.0.0.2, 10.0.0.1"], &proxies), Some(addr("198.51.100.1:0")));
        assert_eq!(client(&["for=198.51.100.1", "for=203.0.113.9, for=10.0.0.1"], &[], &proxies), Some(addr("203.0.113.9:0")));
        // A quote does not run on into the next line.
        assert_eq!(client(&["for=\"198.51.100.1", "for=203.0.113.9"], &[], &[]), Some(addr("203.0.113.9:0")));
        assert_eq!(client(&["for=203.0.113.9", "for=\"198.51.100.1"], &[], &[]), None);
    }

    #[test]
    fn x_forwarded_for_wins_and_forwarded_counts_only_without_it() {
        let xff = ["198.51.100.1"];
        // A client's own Forwarded header passed through by a proxy that sets X-Forwarded-For.
        assert_eq!(client(&["for=203.0.113.9"], &xff, &[]), Some(addr("198.51.100.1:0")));
        assert_eq!(client(&["for 203.0.113.9"], &xff, &[]), Some(addr("198.51.100.1:0")));
        assert_eq!(client(&["for=203.0.113.9"], &[], &[]), Some(addr("203.0.113.9:0")));
        assert_eq!(client(&["for=203.0.113.9"], &[" , "], &[]), Some(addr("203.0.113.9:0")));
        // Forwarded without `for` (only by/proto/host) and no X-Forwarded-For: nothing to believe.
        assert_eq!(client(&["by=10.0.0.1;proto=https", "host=example.com"], &[], &[]), None);
        assert_eq!(client(&["for=unknown"], &[], &[]), None);
    }

    #[test]
    fn garbage_is_believed_nowhere() {
        let proxies = ["10.0.0.0/8"];
        for forwarded in [
            "for=203.0.113.9 for=10.0.0.1",
            "for=\"203.0.113.9, for=10.0.0.1",
            "for=203.0.113.9;for=10.0.0.1",
            "for=",
            "=203.0.113.9",
            "for=\"\"",
            "for=203.0.113.9\"x\"",
            "for=[2001:db8::1",
            "for=\"[2001:db8::1]x\"",
            "for=\"[203.0.113.9]\"",
            "for=\"203.0.113.9:\"",
            "for=\"203.0.113.9:65536\"",
            "for=\"203.0.113.9:+80\"",
            "for=\"2001:db8::1:80:x\"",
            "for=\"203.0.113.9:_\"",
            "for=\"203.0.113.9:_a/b\"",
            "for=\"fe80::1%eth0\"",
            "for=\"203.0.113.9\\",
            "for=localhost",
            "for=203.0.113.09",
            "for=\u{fffd}",
        ] {
            assert_eq!(client(&[forwarded], &[], &proxies), None, "{forwarded}");
        }
        for xff in ["garbage", "203.0.113.9;", "203.0.113.9 10.0.0.1", "\"203.0.113.9\"", "203.0.113.9:", "[::1]x", "::1]"] {
            assert_eq!(client(&[], &[xff, "10.0.0.1"], &proxies), None, "{xff}");
        }
        // Garbage left of the client is never looked at.
        assert_eq!(client(&["for=\"x, y\"z, for=203.0.113.9, for=10.0.0.1"], &[], &proxies), Some(addr("203.0.113.9:0")));
    }

    #[test]
    fn forwarded_elements_recover_after_a_malformed_one() {
        let mut elements = Vec::new();
        let value = "for=1.2.3.4, x y z, host=\"a,b\" junk, by=b;For=\"[::1]\", ;,for=5.6.7.8;for=9.9.9.9,";
        forwarded_elements(value, &mut elements);
        assert_eq!(
            elements,
            [
                ForwardedElement::For("1.2.3.4".into()),
                ForwardedElement::Malformed,
                ForwardedElement::Malformed,
                ForwardedElement::For("[::1]".into()),
                ForwardedElement::NoFor,
                ForwardedElement::Malformed,
            ]
        );
    }

    /// The fuzz entry point keeps its promises on a few inputs (the fuzzer covers the rest).
    #[test]
    fn fuzz_entry_point_runs() {
        let inputs: [&[u8]; 7] = [
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n\r\n",
            b"PROXY UNKNOWN\r\n",
            b"10.0.0.0/8, ::1,bad\nFfor=1.2.3.4, for=10.0.0.1\n1.2.3.4, 10.0.0.1",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x01\xbb",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
            b"",
            // Found by the fuzzer: an IPv4-mapped entry with a short prefix holds no IPv4 address.
            b"10.0.0.0/8, ::1,fd00::/8,::ffff:10.0.0.0/014\nIfor=1..PROXY TCP,1:80\n[2001:db8:: 192.1680]:5",
        ];
        for input in inputs {
            crate::fuzzing::proxy_header(input);
        }
    }
}
