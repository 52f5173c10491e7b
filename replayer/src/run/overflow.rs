//! Where a lane's records wait when its queue is full, so the capture reader never
//! waits on one lane.
//!
//! Waiting on one lane's full queue is how a replay stalls on row locks: the lane that
//! holds a lock has its COMMIT behind the record the reader cannot hand over, and the
//! lane it cannot hand over to waits for that lock (issue: sysbench read_write replayed
//! with 1205s and 200 s of lag). So a lane's overflow is kept in memory up to a budget
//! shared by all lanes, and beyond that written to a spill file and read back in order
//! when the lane has room: memory stays bounded, disk takes the rest.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use super::step::Step;

/// A run of one lane's steps in the spill file.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    offset: u64,
    len: u32,
}

/// An anonymous temporary file (gone when the run ends, even if it is killed) holding
/// spilled steps, appended to by the reader and read back by it.
#[derive(Debug)]
pub struct Spill {
    file: Option<File>,
    len: u64,
}

impl Spill {
    pub fn new() -> Self {
        Spill { file: None, len: 0 }
    }

    /// Bytes written so far (the file is never truncated during a run).
    pub fn bytes(&self) -> u64 {
        self.len
    }

    fn write(&mut self, steps: &[Step]) -> std::io::Result<Block> {
        let bytes = postcard::to_stdvec(steps).map_err(std::io::Error::other)?;
        let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile()?),
        };
        file.write_all(&bytes)?;
        let block = Block {
            offset: self.len,
            len,
        };
        self.len += u64::from(len);
        Ok(block)
    }

    fn read(&self, block: Block) -> std::io::Result<Vec<Step>> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("spill block without a spill file"))?;
        let mut bytes = vec![0; block.len as usize];
        file.read_exact_at(&mut bytes, block.offset)?;
        postcard::from_bytes(&bytes).map_err(std::io::Error::other)
    }
}

/// One lane's waiting steps, oldest first: `front` (read back from disk), then the
/// spilled `blocks`, then `back` (newest, in memory).
#[derive(Debug, Default)]
pub struct Overflow {
    front: VecDeque<Step>,
    blocks: VecDeque<Block>,
    back: VecDeque<Step>,
    spilled: usize,
}

impl Overflow {
    pub fn is_empty(&self) -> bool {
        self.front.is_empty() && self.blocks.is_empty() && self.back.is_empty()
    }

    /// Steps held in memory.
    pub fn in_memory(&self) -> usize {
        self.front.len() + self.back.len()
    }

    /// Steps held on disk.
    pub fn on_disk(&self) -> usize {
        self.spilled
    }

    pub fn push(&mut self, step: Step) {
        self.back.push_back(step);
    }

    /// Puts back a step that [`Overflow::pop`] gave out and could not be delivered.
    pub fn unpop(&mut self, step: Step) {
        self.front.push_front(step);
    }

    /// The oldest waiting step, reading a spilled block back when it is next.
    pub fn pop(&mut self, spill: &Spill) -> std::io::Result<Option<Step>> {
        if self.front.is_empty()
            && let Some(block) = self.blocks.pop_front()
        {
            let steps = spill.read(block)?;
            self.spilled -= steps.len();
            self.front.extend(steps);
        }
        Ok(self.front.pop_front().or_else(|| {
            // Nothing older is left: the newest part is next.
            if self.blocks.is_empty() {
                self.back.pop_front()
            } else {
                None
            }
        }))
    }

    /// Moves the in-memory newest part to disk; returns how many steps left memory.
    pub fn spill_back(&mut self, spill: &mut Spill) -> std::io::Result<usize> {
        if self.back.is_empty() {
            return Ok(0);
        }
        let steps: Vec<Step> = self.back.drain(..).collect();
        let block = spill.write(&steps)?;
        self.blocks.push_back(block);
        self.spilled += steps.len();
        Ok(steps.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use captures::{CloseReason, ConnClose, Record};
    use std::sync::Arc;

    fn step(t: u64) -> Step {
        Step {
            record: Arc::new(Record::ConnClose(ConnClose {
                conn: 1,
                t,
                reason: CloseReason::Quit,
            })),
            class: 0,
            seq: t,
            stmt: None,
            unit: None,
            commit: None,
            pins: false,
        }
    }

    #[test]
    fn order_survives_spilling_and_reading_back() {
        let mut spill = Spill::new();
        let mut o = Overflow::default();
        for t in 0..10 {
            o.push(step(t));
        }
        assert_eq!(o.spill_back(&mut spill).unwrap(), 10);
        for t in 10..15 {
            o.push(step(t));
        }
        assert_eq!(o.spill_back(&mut spill).unwrap(), 5);
        for t in 15..20 {
            o.push(step(t));
        }
        assert_eq!((o.in_memory(), o.on_disk()), (5, 15));
        let first = o.pop(&spill).unwrap().unwrap();
        assert_eq!(first.seq, 0);
        o.unpop(first);
        let mut seen = Vec::new();
        while let Some(s) = o.pop(&spill).unwrap() {
            seen.push(s.seq);
        }
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert!(o.is_empty());
        assert!(spill.bytes() > 0);
    }
}
