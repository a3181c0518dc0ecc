//! How a record sits in a segment file, and how a segment is read back.
//!
//! ```text
//! segment = "LEVEESEG" base:u64 frame*
//! frame   = len:u32 crc:u32 lsn:u64 durable:u64 body[len]      (little endian)
//! crc     = crc32c(len ++ lsn ++ durable ++ body)
//! ```
//!
//! A record's *lsn* is its position in the log's byte stream (segment headers excluded): the
//! segment's base plus its offset after the header. Storing it lets a reader that meets a
//! damaged frame look for the next intact one (a frame whose stored lsn matches its place
//! and whose checksum holds). *durable* is how far the log was known to be fsynced when the
//! frame was written: if an intact frame after a damaged one says the damaged bytes were
//! already durable, the damage is corruption; otherwise it is a torn write that a crash left
//! behind (the normal case), and the tail is cut there.
//!
//! Segments are preallocated (written with zeros ahead of time, so that appending never
//! grows the file and an `fdatasync` has only data to flush): where no intact frame starts
//! and only zero bytes follow to the end of the file, the segment ends ([`End::Zeros`]). No
//! intact frame is all zeros (the checksum of zeros is not zero), so this never hides one.

/// Bytes before the first frame of a segment.
pub(crate) const SEGMENT_HEADER: usize = 16;
/// Bytes before a frame's body.
pub(crate) const FRAME_HEADER: usize = 24;
const MAGIC: &[u8; 8] = b"LEVEESEG";
/// The largest body a frame may have (a bound on a corrupt length field).
pub(crate) const MAX_BODY: usize = 1 << 30;

/// The header of a segment starting at `base`.
pub(crate) fn segment_header(base: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0; SEGMENT_HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&base.to_le_bytes());
    h
}

/// True when `buf` starts with the header of a segment starting at `base`.
pub(crate) fn header_ok(buf: &[u8], base: u64) -> bool {
    buf.len() >= SEGMENT_HEADER && buf[..SEGMENT_HEADER] == segment_header(base)
}

/// Appends a frame holding `body` at `lsn` to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, lsn: u64, durable: u64, body: &[u8]) {
    let len = u32::try_from(body.len()).expect("bodies are bounded by MAX_BODY");
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&durable.to_le_bytes());
    out.extend_from_slice(body);
    let crc = checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(frame: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&frame[..4]), &frame[8..])
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// An intact frame: its body's range in the buffer and its `durable` mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) body: (usize, usize),
    pub(crate) durable: u64,
}

impl Frame {
    /// Offset of the next frame.
    pub(crate) fn end(&self) -> usize {
        self.body.1
    }
}

/// The frame at `at` if it is intact and stored at `lsn`.
pub(crate) fn frame_at(buf: &[u8], at: usize, lsn: u64) -> Option<Frame> {
    let header = buf.get(at..at.checked_add(FRAME_HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    if len > MAX_BODY || u64_at(header, 8) != lsn {
        return None;
    }
    let end = at.checked_add(FRAME_HEADER)?.checked_add(len)?;
    let frame = buf.get(at..end)?;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if checksum(frame) != crc {
        return None;
    }
    Some(Frame { body: (at + FRAME_HEADER, end), durable: u64_at(header, 16) })
}

/// How reading a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Every byte belonged to an intact frame.
    Clean,
    /// Intact frames up to `at`, then only zero bytes to the end of the file: preallocated
    /// space, not yet written. The segment's records end at `at`.
    Zeros {
        /// Offset of the first byte past the last intact frame.
        at: usize,
    },
    /// From `at` on there is no intact frame (or only frames written after the last fsync):
    /// a torn write. Only the last segment can end so.
    Torn {
        /// Offset of the first byte that is not part of an intact frame.
        at: usize,
    },
}

/// Bytes that failed their checksum though later frames prove they had been made durable,
/// or damage in a segment that was sealed (only the last segment can have a torn tail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damage {
    /// File offset of the first damaged byte.
    pub(crate) from: usize,
    /// File offset of the next intact frame (or the end of the file).
    pub(crate) to: usize,
}

/// Reads the frames of a segment starting at `base`, handing each body to `visit` with its
/// lsn. On damage, `on_damage` decides: `false` stops reading (the damage is returned),
/// `true` skips to the next intact frame.
///
/// `last` says whether this is the newest segment, the only one where a torn tail is normal.
#[cfg(test)]
pub(crate) fn read_segment(
    buf: &[u8],
    base: u64,
    last: bool,
    visit: impl FnMut(u64, &[u8]),
    on_damage: impl FnMut(Damage) -> bool,
) -> Result<End, Damage> {
    if buf.len() < SEGMENT_HEADER {
        return Ok(End::Torn { at: buf.len() });
    }
    read_frames(&buf[SEGMENT_HEADER..], SEGMENT_HEADER, base, last, visit, on_damage)
}

/// [`read_segment`] over `buf`, the segment's bytes from file offset `origin` (a frame's
/// start) to its end. Offsets in the result are file offsets.
fn read_frames(
    buf: &[u8],
    origin: usize,
    base: u64,
    last: bool,
    mut visit: impl FnMut(u64, &[u8]),
    mut on_damage: impl FnMut(Damage) -> bool,
) -> Result<End, Damage> {
    let lsn_of = |at: usize| base + (origin + at - SEGMENT_HEADER) as u64;
    let mut at = 0;
    loop {
        if at == buf.len() {
            return Ok(End::Clean);
        }
        if let Some(frame) = frame_at(buf, at, lsn_of(at)) {
            visit(lsn_of(at), &buf[frame.body.0..frame.body.1]);
            at = frame.end();
            continue;
        }
        if buf[at..].iter().all(|&b| b == 0) {
            return Ok(End::Zeros { at: origin + at });
        }
        let next = (at + 1..buf.len().saturating_sub(FRAME_HEADER - 1))
            .filter(|&p| u64_at(buf, p + 8) == lsn_of(p))
            .find_map(|p| frame_at(buf, p, lsn_of(p)).map(|f| (p, f)));
        let proven_durable = next.is_some_and(|(_, f)| f.durable > lsn_of(at));
        if last && !proven_durable {
            return Ok(End::Torn { at: origin + at });
        }
        let to = next.map_or(buf.len(), |(p, _)| p);
        let damage = Damage { from: origin + at, to: origin + to };
        if !on_damage(damage) {
            return Err(damage);
        }
        at = to;
    }
}

/// Bytes read at a time by [`read_stream`]: large enough that a read costs little per
/// record, small enough to stay in cache and to be reused for every segment.
const CHUNK: usize = 1 << 20;

/// What [`read_stream`] found: whether the file starts with the segment's header, how
/// reading ended, and the file's length.
#[derive(Debug)]
pub(crate) struct Streamed {
    pub(crate) header_ok: bool,
    pub(crate) end: Result<End, Damage>,
    pub(crate) len: usize,
}

/// A file read in chunks through a buffer: `buf[start..filled]` holds the file from offset
/// `origin + start` on.
struct Chunked<'a> {
    file: &'a mut dyn std::io::Read,
    buf: &'a mut Vec<u8>,
    start: usize,
    filled: usize,
    origin: usize,
    eof: bool,
}

impl Chunked<'_> {
    /// File offset of `buf[start]`.
    fn offset(&self) -> usize {
        self.origin + self.start
    }

    /// The bytes available from `start`.
    fn window(&self) -> &[u8] {
        &self.buf[self.start..self.filled]
    }

    /// Makes at least `need` bytes from `start` available, unless the file ends first.
    fn fill(&mut self, need: usize) -> std::io::Result<()> {
        if self.filled - self.start >= need || self.eof {
            return Ok(());
        }
        self.buf.copy_within(self.start..self.filled, 0);
        self.origin += self.start;
        self.filled -= self.start;
        self.start = 0;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        while self.filled < need {
            match self.file.read(&mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The bytes from `start` to the end of the file, or `None` when they are all zeros
    /// (read a chunk at a time, so a preallocated tail costs no more memory than a chunk).
    fn rest_unless_zeros(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut zeros = 0;
        loop {
            let window = self.window();
            if let Some(p) = window.iter().position(|&b| b != 0) {
                self.start += p;
                let mut rest = vec![0; zeros + p];
                rest.extend_from_slice(&self.rest()?);
                return Ok(Some(rest));
            }
            zeros += window.len();
            self.start = self.filled;
            self.fill(1)?;
            if self.window().is_empty() {
                return Ok(None);
            }
        }
    }

    /// The bytes from `start` to the end of the file.
    fn rest(&mut self) -> std::io::Result<Vec<u8>> {
        let mut rest = self.window().to_vec();
        self.file.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

/// [`read_segment`] over a file of `file_len` bytes read in chunks into `buf` (reused from
/// segment to segment),
/// so opening a log of any size needs one chunk of memory, not a copy of each segment. At
/// the first frame that is not intact the rest of the file is read whole and handed to the
/// slice reader, which looks past damage.
///
/// # Errors
/// An error reading the file.
pub(crate) fn read_stream(
    file: &mut dyn std::io::Read,
    file_len: u64,
    buf: &mut Vec<u8>,
    base: u64,
    last: bool,
    visit: impl FnMut(u64, &[u8]),
    on_damage: impl FnMut(Damage) -> bool,
) -> std::io::Result<Streamed> {
    read_chunked(file, file_len, buf, CHUNK, base, last, visit, on_damage)
}

/// [`read_stream`] with chunks of `chunk` bytes.
#[allow(clippy::too_many_arguments)]
fn read_chunked(
    file: &mut dyn std::io::Read,
    file_len: u64,
    buf: &mut Vec<u8>,
    chunk: usize,
    base: u64,
    last: bool,
    mut visit: impl FnMut(u64, &[u8]),
    on_damage: impl FnMut(Damage) -> bool,
) -> std::io::Result<Streamed> {
    if buf.len() < chunk {
        buf.resize(chunk, 0);
    }
    let mut r = Chunked { file, buf, start: 0, filled: 0, origin: 0, eof: false };
    r.fill(SEGMENT_HEADER)?;
    if !header_ok(r.window(), base) {
        let len = r.rest()?.len();
        return Ok(Streamed { header_ok: false, end: Ok(End::Clean), len });
    }
    r.start = SEGMENT_HEADER;
    loop {
        r.fill(FRAME_HEADER)?;
        let at = r.offset();
        if r.window().is_empty() {
            return Ok(Streamed { header_ok: true, end: Ok(End::Clean), len: at });
        }
        let lsn = base + (at - SEGMENT_HEADER) as u64;
        if let Some(header) = r.window().get(..FRAME_HEADER) {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            // A length past the file's end is a torn frame: no need to read for it.
            let fits = (at + FRAME_HEADER + len) as u64 <= file_len;
            if len <= MAX_BODY && fits && u64_at(header, 8) == lsn {
                r.fill(FRAME_HEADER + len)?;
            }
        }
        if let Some(frame) = frame_at(r.window(), 0, lsn) {
            let start = r.start;
            visit(lsn, &r.buf[start + frame.body.0..start + frame.body.1]);
            r.start += frame.end();
            continue;
        }
        // Not an intact frame: preallocated space, a torn tail or damage. Look at the rest
        // as a whole, unless it is only zeros.
        let Some(rest) = r.rest_unless_zeros()? else {
            let len = usize::try_from(file_len).unwrap_or(usize::MAX).max(at);
            return Ok(Streamed { header_ok: true, end: Ok(End::Zeros { at }), len });
        };
        let end = read_frames(&rest, at, base, last, visit, on_damage);
        return Ok(Streamed { header_ok: true, end, len: at + rest.len() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(bodies: &[&[u8]], base: u64) -> Vec<u8> {
        let mut buf = segment_header(base).to_vec();
        for b in bodies {
            let lsn = base + (buf.len() - SEGMENT_HEADER) as u64;
            encode(&mut buf, lsn, lsn, b);
        }
        buf
    }

    fn read(buf: &[u8], base: u64, last: bool) -> (Vec<Vec<u8>>, Result<End, Damage>) {
        let mut out = Vec::new();
        let end = read_segment(buf, base, last, |_, b| out.push(b.to_vec()), |_| false);
        (out, end)
    }

    #[test]
    fn round_trip() {
        let buf = segment(&[b"a", b"", b"hello"], 100);
        assert!(header_ok(&buf, 100));
        assert!(!header_ok(&buf, 101));
        let (bodies, end) = read(&buf, 100, true);
        assert_eq!(bodies, [b"a".to_vec(), vec![], b"hello".to_vec()]);
        assert_eq!(end, Ok(End::Clean));
    }

    #[test]
    fn preallocated_zeros_end_a_segment_sealed_or_not() {
        let frames = segment(&[b"one", b"two"], 0);
        let mut buf = frames.clone();
        buf.resize(frames.len() + 4096, 0);
        for last in [true, false] {
            let (bodies, end) = read(&buf, 0, last);
            assert_eq!(bodies, [b"one".to_vec(), b"two".to_vec()]);
            assert_eq!(end, Ok(End::Zeros { at: frames.len() }));
        }
        // Zeros with an intact frame after them are not the end: in a sealed segment they
        // are damage, in the last one a torn write (nothing after them was proven durable).
        let mut gap = frames.clone();
        gap.resize(frames.len() + 64, 0);
        let lsn = (gap.len() - SEGMENT_HEADER) as u64;
        encode(&mut gap, lsn, 0, b"late");
        assert_eq!(read(&gap, 0, true).1, Ok(End::Torn { at: frames.len() }));
        assert_eq!(
            read(&gap, 0, false).1,
            Err(Damage { from: frames.len(), to: frames.len() + 64 })
        );
        // A header of zeros is no frame: its checksum would not be zero.
        let mut zero = vec![0u8; FRAME_HEADER];
        assert!(frame_at(&zero, 0, 0).is_none());
        zero.clear();
        encode(&mut zero, 0, 0, b"");
        assert!(zero.iter().any(|&b| b != 0));
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_frame() {
        let buf = segment(&[b"one", b"two"], 0);
        let whole = SEGMENT_HEADER + FRAME_HEADER + 3;
        for cut in whole + 1..buf.len() {
            let (bodies, end) = read(&buf[..cut], 0, true);
            assert_eq!(bodies, [b"one".to_vec()]);
            assert_eq!(end, Ok(End::Torn { at: whole }));
        }
        // The same bytes in a sealed segment are damage, not a torn tail.
        let (_, end) = read(&buf[..buf.len() - 1], 0, false);
        assert_eq!(end, Err(Damage { from: whole, to: buf.len() - 1 }));
    }

    #[test]
    fn damage_before_a_frame_that_says_it_was_durable_is_corruption() {
        let mut buf = segment(&[b"one", b"two", b"three"], 0);
        let second = SEGMENT_HEADER + FRAME_HEADER + 3;
        buf[second + FRAME_HEADER] ^= 1;
        let third = second + FRAME_HEADER + 3;
        let (bodies, end) = read(&buf, 0, true);
        assert_eq!(bodies, [b"one".to_vec()]);
        assert_eq!(end, Err(Damage { from: second, to: third }));
        // Skipping goes on after the damage.
        let mut out = Vec::new();
        let end = read_segment(&buf, 0, true, |_, b| out.push(b.to_vec()), |_| true);
        assert_eq!(out, [b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(end, Ok(End::Clean));
    }

    /// Hands out at most `step` bytes per read, like a file read across page boundaries.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(self.step).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        /// Reading a segment in chunks finds what reading it whole finds: the same records,
        /// the same torn tail or damage, whatever the chunk size, however the file was torn
        /// or damaged.
        #[test]
        fn chunked_reads_find_what_whole_reads_find(
            bodies in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..90), 0..30),
            cut in proptest::option::of(0usize..4000),
            flips in proptest::collection::vec((0usize..4000, 1u8..=255), 0..3),
            chunk in 1usize..200,
            step in 1usize..300,
            zeros in proptest::prop_oneof![proptest::strategy::Just(0usize), 1usize..600],
            last: bool,
            skip: bool,
        ) {
            let mut buf = segment(&bodies.iter().map(Vec::as_slice).collect::<Vec<_>>(), 40);
            for (at, x) in flips {
                if let Some(b) = buf.get_mut(at) {
                    *b ^= x;
                }
            }
            if let Some(cut) = cut {
                buf.truncate(cut);
            }
            // Preallocated space after whatever is left.
            buf.resize(buf.len() + zeros, 0);
            let (mut whole, mut whole_damage) = (Vec::new(), Vec::new());
            let header = header_ok(&buf, 40);
            let whole_end = header.then(|| {
                read_segment(&buf, 40, last, |l, b| whole.push((l, b.to_vec())), |d| {
                    whole_damage.push(d);
                    skip
                })
            });
            let (mut got, mut got_damage) = (Vec::new(), Vec::new());
            let mut scratch = Vec::new();
            let mut file = Trickle { data: &buf, step };
            let streamed = read_chunked(
                &mut file,
                buf.len() as u64,
                &mut scratch,
                chunk,
                40,
                last,
                |l, b| got.push((l, b.to_vec())),
                |d| {
                    got_damage.push(d);
                    skip
                },
            )
            .unwrap();
            proptest::prop_assert_eq!(streamed.header_ok, header);
            if let Some(end) = whole_end {
                proptest::prop_assert_eq!(streamed.end, end);
                proptest::prop_assert_eq!(got, whole);
                proptest::prop_assert_eq!(got_damage, whole_damage);
                proptest::prop_assert_eq!(streamed.len, buf.len());
            } else {
                proptest::prop_assert!(got.is_empty());
            }
        }
    }

    #[test]
    fn damage_followed_only_by_unsynced_frames_is_a_torn_write() {
        let mut buf = segment_header(0).to_vec();
        encode(&mut buf, 0, 0, b"one");
        let second = buf.len();
        let lsn2 = (second - SEGMENT_HEADER) as u64;
        encode(&mut buf, lsn2, 0, b"two");
        let lsn3 = (buf.len() - SEGMENT_HEADER) as u64;
        encode(&mut buf, lsn3, lsn2, b"three"); // written before "two" was synced
        buf[second + FRAME_HEADER] ^= 1;
        let (bodies, end) = read(&buf, 0, true);
        assert_eq!(bodies, [b"one".to_vec()]);
        assert_eq!(end, Ok(End::Torn { at: second }));
    }
}
