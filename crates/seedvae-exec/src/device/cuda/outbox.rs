//! The device buffers a parking copy still reads. A state goes to host memory on a copy stream
//! of its own while the GPU computes on; the buffer it is read from must outlive that copy, so
//! it waits here instead of going back to the pool at once. The CUDA device and its memory plan
//! keep the same rule, so the plan still counts every byte the pool hands out.

use std::collections::VecDeque;

/// Most bytes held at once beyond the newest buffer (which stays whatever its size: its copy
/// runs beside the conv queued after it). 512 MiB made 1080p within 7 GB take bands of 68 px
/// instead of 135.
pub const OUTBOX_BYTES: usize = 256 << 20;

/// At most this many buffers held: with two, a band's state and the band of output a tail
/// sends to host memory both run beside the next band's conv.
const OUTBOX_DEPTH: usize = 2;

/// Buffers (with whatever says their copy is done) held while their copies run, oldest first.
pub struct Outbox<T> {
    held: VecDeque<(T, usize)>,
    bytes: usize,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Outbox {
            held: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> Outbox<T> {
    /// Hold `t` (`bytes` of device memory); the buffers to let go now, oldest first: beyond the
    /// newest two, or while more than [`OUTBOX_BYTES`] are held with the newest.
    pub fn push(&mut self, t: T, bytes: usize) -> Vec<T> {
        self.held.push_back((t, bytes));
        self.bytes += bytes;
        let mut out = Vec::new();
        while self.held.len() > OUTBOX_DEPTH || (self.bytes > OUTBOX_BYTES && self.held.len() > 1) {
            let (t, b) = self.held.pop_front().expect("not empty");
            self.bytes -= b;
            out.push(t);
        }
        out
    }

    /// Every buffer held, oldest first (at a synchronization, or when the device goes).
    pub fn drain(&mut self) -> Vec<T> {
        self.bytes = 0;
        self.held.drain(..).map(|(t, _)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_two_stay_unless_they_hold_too_much() {
        let mut o = Outbox::default();
        assert!(o.push(1, 100).is_empty());
        assert!(o.push(2, 100).is_empty());
        assert_eq!(o.push(3, 100), vec![1]);
        // Too large to share: the newest stays alone.
        assert_eq!(o.push(4, OUTBOX_BYTES + 1), vec![2, 3]);
        assert_eq!(o.push(5, OUTBOX_BYTES / 2), vec![4]);
        assert_eq!(o.push(6, OUTBOX_BYTES / 2 + 1), vec![5]);
        assert_eq!(o.drain(), vec![6]);
        assert!(o.drain().is_empty());
    }
}
