//! The stream tungstenite's handshake runs over: it passes bytes up to the end of the HTTP head
//! and keeps what follows (frames the other side sent right behind its request or response) for
//! our framing, which takes over once the upgrade is done.

use std::io::{self, Read, Write};

/// Where the reader is in the HTTP head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeadProgress {
    /// Inside a line.
    InLine,
    /// Right after a line feed.
    AfterLineFeed,
    /// After a line feed and a carriage return.
    AfterLineFeedReturn,
    /// The empty line that ends the head was read; nothing more is passed on.
    Done,
}

/// A stream that reads no further than the end of the HTTP head (see the module documentation).
#[derive(Debug)]
pub(crate) struct HeadReader<S> {
    /// The stream read from and written to.
    inner: S,
    /// Where the reader is in the head.
    progress: HeadProgress,
    /// Bytes read from `inner` after the head.
    after_head: Vec<u8>,
}

impl<S> HeadReader<S> {
    /// Wraps a stream whose next bytes are an HTTP request or response head.
    pub(crate) fn new(inner: S) -> Self {
        HeadReader { inner, progress: HeadProgress::InLine, after_head: Vec::new() }
    }

    /// The wrapped stream.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped stream and the bytes read after the head.
    pub(crate) fn into_parts(self) -> (S, Vec<u8>) {
        (self.inner, self.after_head)
    }

    /// How many bytes of `data` belong to the head (all, unless its end is inside `data`). The
    /// head ends with an empty line; like httparse, a line may end with CRLF or a bare LF.
    fn head_part(&mut self, data: &[u8]) -> usize {
        for (i, byte) in data.iter().enumerate() {
            self.progress = match (self.progress, byte) {
                (HeadProgress::AfterLineFeed | HeadProgress::AfterLineFeedReturn, b'\n') => {
                    self.progress = HeadProgress::Done;
                    return i + 1;
                }
                (_, b'\n') => HeadProgress::AfterLineFeed,
                (HeadProgress::AfterLineFeed, b'\r') => HeadProgress::AfterLineFeedReturn,
                _ => HeadProgress::InLine,
            };
        }
        data.len()
    }
}

impl<S: Read> Read for HeadReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.progress == HeadProgress::Done {
            // Frames are not the handshake's to read.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.inner.read(buf)?;
        let head = self.head_part(&buf[..n]);
        self.after_head.extend_from_slice(&buf[head..n]);
        Ok(head)
    }
}

impl<S: Write> Write for HeadReader<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_after_the_head_are_kept_not_passed_on() {
        for head in [&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], b"GET / HTTP/1.1\nHost: a\n\n", b"GET / HTTP/1.1\nHost: a\r\n\n"] {
            let mut stream = head.to_vec();
            stream.extend_from_slice(b"\x81\x02hi");
            let mut reader = HeadReader::new(&stream[..]);
            let mut buf = [0u8; 256];
            assert_eq!(reader.read(&mut buf).expect("the head"), head.len(), "{head:?}");
            assert!(reader.read(&mut buf).is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock));
            assert_eq!(reader.into_parts().1, b"\x81\x02hi");
        }
    }

    #[test]
    fn a_head_split_across_reads_ends_where_its_empty_line_does() {
        let stream = b"HTTP/1.1 101 OK\r\nA: b\r\n\r\nrest";
        let mut reader = HeadReader::new(&stream[..]);
        let mut passed = 0;
        for piece in stream.chunks(3) {
            passed += reader.head_part(piece);
            if reader.progress == HeadProgress::Done {
                break;
            }
        }
        assert_eq!(passed, stream.len() - 4);
    }
}
