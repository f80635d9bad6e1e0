//! A byte stream in memory, for driving a `Connection` without sockets: the simulated-time tests
//! and the fuzz targets. Two [`MemoryStream`]s made by [`pair`] are the ends of one connection.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

/// One direction of a connection: bytes written and not read yet.
#[derive(Debug, Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    /// The writer has gone: reads return end of stream once `bytes` is empty.
    closed: bool,
    /// The most bytes the pipe holds (a full pipe makes writes "would block", like a socket
    /// whose peer does not read); `None`: no limit.
    capacity: Option<usize>,
}

/// One end of an in-memory connection. Reads "would block" when nothing waits, like a
/// non-blocking socket.
#[derive(Debug)]
pub(crate) struct MemoryStream {
    incoming: Rc<RefCell<Pipe>>,
    outgoing: Rc<RefCell<Pipe>>,
}

/// The two ends of a new in-memory connection.
pub(crate) fn pair() -> (MemoryStream, MemoryStream) {
    let (a, b) = (Rc::new(RefCell::new(Pipe::default())), Rc::new(RefCell::new(Pipe::default())));
    (
        MemoryStream { incoming: a.clone(), outgoing: b.clone() },
        MemoryStream { incoming: b, outgoing: a },
    )
}

impl MemoryStream {
    /// Bytes from this end to the other, as if written.
    pub(crate) fn send(&self, bytes: &[u8]) {
        self.outgoing.borrow_mut().bytes.extend(bytes);
    }

    /// Takes what the other end wrote and this end has not read.
    pub(crate) fn take_received(&self) -> Vec<u8> {
        self.incoming.borrow_mut().bytes.drain(..).collect()
    }

    /// Bytes this end wrote that the other end has not read.
    #[cfg(test)]
    pub(crate) fn sent_unread(&self) -> usize {
        self.outgoing.borrow().bytes.len()
    }

    /// Makes the other end's writes "would block" once this many bytes wait unread here, like a
    /// peer that does not read (`None`: no limit).
    pub(crate) fn set_receive_capacity(&self, capacity: Option<usize>) {
        self.incoming.borrow_mut().capacity = capacity;
    }

    /// Closes this end's sending side: the other end reads end of stream after the bytes left.
    pub(crate) fn close_sending(&self) {
        self.outgoing.borrow_mut().closed = true;
    }
}

impl Drop for MemoryStream {
    /// Like a socket: the other side reads end of stream once this end is gone.
    fn drop(&mut self) {
        self.close_sending();
    }
}

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pipe = self.incoming.borrow_mut();
        if pipe.bytes.is_empty() {
            return if pipe.closed { Ok(0) } else { Err(io::ErrorKind::WouldBlock.into()) };
        }
        let n = buf.len().min(pipe.bytes.len());
        for (slot, byte) in buf.iter_mut().zip(pipe.bytes.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pipe = self.outgoing.borrow_mut();
        if pipe.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let room = pipe.capacity.map_or(buf.len(), |cap| cap.saturating_sub(pipe.bytes.len()));
        if room == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(room);
        pipe.bytes.extend(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
