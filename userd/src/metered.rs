//! A byte budget on what an unauthenticated peer may make us read.
//!
//! Before the helo is verified, a connection may send at most [`PRE_AUTH_BUDGET`] bytes (the
//! HTTP upgrade request plus the helo frame); past that, reads fail and the connection is
//! dropped. This keeps hundreds of unauthenticated connections cheap however large
//! `pubmaxsize` is. After a good helo the budget is lifted.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// tungstenite refuses an upgrade request over 64 KiB; a helo is at most
/// [`crate::handshake::MAX_HELO_BYTES`] plus a frame header.
pub const PRE_AUTH_BUDGET: usize = 64 * 1024 + 8 * 1024;

/// Largest single read while a budget applies (reads then go through a stack buffer).
const METERED_CHUNK: usize = 4096;

/// A stream whose reads are limited to a budget until [`Metered::lift`].
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    /// Bytes still allowed; `None` once lifted.
    budget: Option<usize>,
}

impl<S> Metered<S> {
    pub fn new(inner: S, budget: usize) -> Self {
        Self { inner, budget: Some(budget) }
    }

    /// Removes the budget: the peer is authenticated.
    pub fn lift(&mut self) {
        self.budget = None;
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(budget) = this.budget else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if budget == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too much data before the handshake completed",
            )));
        }
        let mut chunk = [0u8; METERED_CHUNK];
        let room = budget.min(buf.remaining()).min(METERED_CHUNK);
        let mut limited = ReadBuf::new(&mut chunk[..room]);
        match Pin::new(&mut this.inner).poll_read(cx, &mut limited) {
            Poll::Ready(Ok(())) => {
                let filled = limited.filled();
                buf.put_slice(filled);
                this.budget = Some(budget - filled.len());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_stop_at_the_budget_until_lifted() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let mut metered = Metered::new(b, 10);
        a.write_all(&[7u8; 100]).await.unwrap();
        let mut got = vec![0u8; 100];
        let n = metered.read(&mut got).await.unwrap();
        assert_eq!(n, 10);
        assert!(metered.read(&mut got).await.is_err());
        metered.lift();
        let n = metered.read(&mut got).await.unwrap();
        assert_eq!(n, 90);
    }
}
