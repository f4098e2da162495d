//! `CpuSet`: a set of logical CPU ids (or NUMA node ids), with the kernel's two text forms:
//! cpulists (`0-3,8-11`) and hexadecimal masks (`ff,00000000`, 32-bit words, most significant first).

use std::fmt;
use std::sync::Arc;

/// The largest id accepted from any text. Real kernels stop far below (NR_CPUS ≤ 8192 today);
/// the bound keeps a corrupt file ("0-4294967295") from allocating gigabytes.
pub const MAX_ID: usize = 1 << 17;

/// Words kept on the stack while a set is built from unordered ids: 4,096 CPUs.
const STACK_WORDS: usize = 64;

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    /// Bit i of word w is id 64*w+i. Never ends with a zero word and None when empty, so equality is
    /// structural. Shared and copied on write: a sibling or package set handed to each CPU it
    /// names, or an intersection that changes nothing, costs a reference count, not a copy of a
    /// set as wide as the machine.
    words: Option<Arc<[u64]>>,
}

/// Why a cpulist or mask did not parse; `Display` says what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ParseError {}

/// The length of `words` without its trailing zero words.
fn trimmed_len(words: &[u64]) -> usize {
    words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1)
}

/// Word `i` of `words`, 0 past its end.
fn word(words: &[u64], i: usize) -> u64 {
    words.get(i).copied().unwrap_or(0)
}

/// Words being filled from unordered ids: on the stack up to `STACK_WORDS`, then on the heap.
struct Builder {
    stack: [u64; STACK_WORDS],
    heap: Vec<u64>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            stack: [0; STACK_WORDS],
            heap: Vec::new(),
        }
    }

    fn insert(&mut self, id: usize) {
        let w = id / 64;
        let bit = 1u64 << (id % 64);
        if self.heap.is_empty() {
            if let Some(slot) = self.stack.get_mut(w) {
                *slot |= bit;
                return;
            }
            self.heap.extend_from_slice(&self.stack);
        }
        if w >= self.heap.len() {
            self.heap.resize(w + 1, 0);
        }
        if let Some(slot) = self.heap.get_mut(w) {
            *slot |= bit;
        }
    }

    fn finish(&self) -> CpuSet {
        if self.heap.is_empty() {
            CpuSet::from_words(&self.stack)
        } else {
            CpuSet::from_words(&self.heap)
        }
    }
}

impl CpuSet {
    pub fn new() -> Self {
        CpuSet { words: None }
    }

    /// A set of one id.
    pub fn single(id: usize) -> Self {
        let (w, bit) = (id / 64, 1u64 << (id % 64));
        CpuSet::from_fn(w + 1, |i| if i == w { bit } else { 0 })
    }

    /// The ids `lo..=hi`.
    pub fn range(lo: usize, hi: usize) -> Self {
        if lo > hi {
            return CpuSet::new();
        }
        CpuSet::from_fn(hi / 64 + 1, |i| range_word(i, lo, hi))
    }

    /// From raw 64-bit words (bit i of word w is id 64*w+i), as `sched_getaffinity` gives them.
    pub fn from_words(words: &[u64]) -> Self {
        match words.get(..trimmed_len(words)) {
            Some(w) if !w.is_empty() => CpuSet {
                words: Some(Arc::from(w)),
            },
            _ => CpuSet::new(),
        }
    }

    /// The set whose word i is `f(i)` for i < `len` (one allocation); `f(len - 1)` should be
    /// non-zero, else the words are trimmed first.
    fn from_fn(len: usize, f: impl Fn(usize) -> u64) -> Self {
        let mut len = len;
        while len > 0 && f(len - 1) == 0 {
            len -= 1;
        }
        if len == 0 {
            return CpuSet::new();
        }
        CpuSet {
            words: Some((0..len).map(f).collect()),
        }
    }

    /// The raw 64-bit words, enough to hold the highest id.
    pub fn words(&self) -> &[u64] {
        self.words.as_deref().unwrap_or(&[])
    }

    pub fn insert(&mut self, id: usize) {
        if self.contains(id) {
            return;
        }
        let (w, bit) = (id / 64, 1u64 << (id % 64));
        if let Some(slot) = self.unshared_word(w) {
            *slot |= bit;
            return;
        }
        // Shared, or growing: one copy.
        let old = self.words();
        let len = old.len().max(w + 1);
        *self = CpuSet::from_fn(len, |i| word(old, i) | if i == w { bit } else { 0 });
    }

    pub fn remove(&mut self, id: usize) {
        if !self.contains(id) {
            return;
        }
        let (w, bit) = (id / 64, 1u64 << (id % 64));
        // In place unless shared, or clearing the last word (which trims it).
        if w + 1 < self.words().len() {
            if let Some(slot) = self.unshared_word(w) {
                *slot &= !bit;
                return;
            }
        }
        let old = self.words();
        *self = CpuSet::from_fn(old.len(), |i| word(old, i) & if i == w { !bit } else { !0 });
    }

    /// Word `w`, writable in place: None when the words are shared (or `w` is past them), and the
    /// caller makes its own copy.
    fn unshared_word(&mut self, w: usize) -> Option<&mut u64> {
        self.words
            .as_mut()
            .and_then(Arc::get_mut)
            .and_then(|words| words.get_mut(w))
    }

    pub fn contains(&self, id: usize) -> bool {
        word(self.words(), id / 64) & (1 << (id % 64)) != 0
    }

    pub fn len(&self) -> usize {
        self.words().iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_none()
    }

    /// The lowest id.
    pub fn first(&self) -> Option<usize> {
        let words = self.words();
        let w = words.iter().position(|&w| w != 0)?;
        Some(w * 64 + words.get(w)?.trailing_zeros() as usize)
    }

    /// The highest id.
    pub fn last(&self) -> Option<usize> {
        let words = self.words();
        let w = words.len().checked_sub(1)?;
        Some(w * 64 + 63 - words.get(w)?.leading_zeros() as usize)
    }

    /// Ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + i)
            })
        })
    }

    /// The set of `f(a, b)` word by word; `self` or `other` itself (shared, not copied) when the
    /// result equals it.
    fn zip_with(&self, other: &CpuSet, f: impl Fn(u64, u64) -> u64) -> CpuSet {
        let (a, b) = (self.words(), other.words());
        let at = |i: usize| f(word(a, i), word(b, i));
        // One pass for the trimmed length and whether the result is an operand, then at most one
        // allocation.
        let (mut len, mut is_a, mut is_b) = (0, true, true);
        for i in 0..a.len().max(b.len()) {
            let r = at(i);
            if r != 0 {
                len = i + 1;
            }
            is_a &= r == word(a, i);
            is_b &= r == word(b, i);
        }
        if len == 0 {
            CpuSet::new()
        } else if is_a {
            self.clone()
        } else if is_b {
            other.clone()
        } else {
            CpuSet {
                words: Some((0..len).map(at).collect()),
            }
        }
    }

    pub fn union(&self, other: &CpuSet) -> CpuSet {
        self.zip_with(other, |a, b| a | b)
    }

    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        self.zip_with(other, |a, b| a & b)
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        self.zip_with(other, |a, b| a & !b)
    }

    /// `self = self ∪ other`, in place when `self` is not shared and wide enough.
    pub fn union_with(&mut self, other: &CpuSet) {
        if other.is_subset(self) {
            return;
        }
        let b = other.words();
        if let Some(a) = self
            .words
            .as_mut()
            .and_then(Arc::get_mut)
            .filter(|a| a.len() >= b.len())
        {
            a.iter_mut().zip(b).for_each(|(x, y)| *x |= y);
            return;
        }
        *self = self.union(other);
    }

    pub fn is_subset(&self, other: &CpuSet) -> bool {
        let b = other.words();
        self.words()
            .iter()
            .enumerate()
            .all(|(i, &x)| x & !word(b, i) == 0)
    }

    pub fn intersects(&self, other: &CpuSet) -> bool {
        self.words()
            .iter()
            .zip(other.words())
            .any(|(x, y)| x & y != 0)
    }

    /// Parses a cpulist: `0-3,8,10-11`, also with `a-b:stride/group` as the kernel accepts.
    /// Surrounding whitespace, newlines and trailing NULs are ignored; an empty list is the empty set.
    pub fn parse_list(text: &str) -> Result<CpuSet, ParseError> {
        let t = clean(text);
        if t.is_empty() {
            return Ok(CpuSet::new());
        }
        let bad = |why: &str| {
            ParseError(format!(
                "{t:?} is not a cpulist ({why}; expected e.g. \"0-3,8-11\")"
            ))
        };
        // Twice over the text: check it and find the highest id, then set the bits in words
        // sized for it (on the stack up to 4,096 CPUs), so the set is allocated once.
        let mut top = 0;
        for part in t.split(',') {
            top = top.max(parse_part(part).map_err(bad)?.hi);
        }
        let len = top / 64 + 1;
        let mut stack = [0u64; STACK_WORDS];
        let mut heap = Vec::new();
        let words: &mut [u64] = match stack.get_mut(..len) {
            Some(w) => w,
            None => {
                heap.resize(len, 0);
                &mut heap
            }
        };
        for part in t.split(',') {
            let p = parse_part(part).map_err(bad)?;
            if p.used == p.group {
                for (i, w) in words.iter_mut().enumerate().skip(p.lo / 64) {
                    if i * 64 > p.hi {
                        break;
                    }
                    *w |= range_word(i, p.lo, p.hi);
                }
            } else {
                for id in p.lo..=p.hi {
                    if (id - p.lo) % p.group < p.used {
                        if let Some(w) = words.get_mut(id / 64) {
                            *w |= 1 << (id % 64);
                        }
                    }
                }
            }
        }
        Ok(CpuSet::from_words(words))
    }

    /// Parses a hexadecimal mask: comma-separated 32-bit words, most significant first
    /// (`00000000,0000ff00`), with or without `0x`. Whitespace and trailing NULs are ignored.
    pub fn parse_mask(text: &str) -> Result<CpuSet, ParseError> {
        let t = clean(text);
        let bad = |why: &str| {
            ParseError(format!(
                "{t:?} is not a hex CPU mask ({why}; expected e.g. \"ff,00000000\")"
            ))
        };
        if t.is_empty() {
            return Err(bad("empty"));
        }
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        let groups: Vec<&str> = t.split(',').collect();
        // Every group but the first is a full 32-bit word; the first may be shorter.
        let mut bits: Vec<u32> = Vec::with_capacity(groups.len()); // least significant first
        for (i, g) in groups.iter().rev().enumerate() {
            let g = g.trim();
            if g.is_empty() || g.len() > 8 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
                // A single unseparated long mask ("ffffffffffffffff") is accepted too.
                if groups.len() == 1 && g.len() > 8 && g.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Self::parse_mask(&split_hex(g));
                }
                return Err(bad("bad hex word"));
            }
            let word = u32::from_str_radix(g, 16).map_err(|_| bad("bad hex word"))?;
            // The highest id this word sets must not pass MAX_ID (the same bound as cpulists).
            if word != 0 && i * 32 + (31 - word.leading_zeros() as usize) > MAX_ID {
                return Err(bad(&format!("id above {MAX_ID}")));
            }
            if i * 32 > MAX_ID {
                continue;
            }
            bits.push(word);
        }
        let words: Vec<u64> = bits
            .chunks(2)
            .map(|c| c[0] as u64 | (c.get(1).copied().unwrap_or(0) as u64) << 32)
            .collect();
        Ok(CpuSet::from_words(&words))
    }

    /// Parses either form: a cpulist, or a mask when the text has hex letters, a `0x`, or
    /// comma-separated 8-digit groups.
    pub fn parse_any(text: &str) -> Result<CpuSet, ParseError> {
        let t = clean(text);
        let looks_mask = t.starts_with("0x")
            || t.bytes().any(|b| matches!(b, b'a'..=b'f' | b'A'..=b'F'))
            || (t.contains(',') && t.split(',').all(|g| g.len() == 8) && !t.contains('-'));
        if looks_mask {
            Self::parse_mask(t)
        } else {
            Self::parse_list(t)
        }
    }

    /// The cpulist form, e.g. `0-3,8-11`; empty for the empty set.
    pub fn to_list(&self) -> String {
        let mut out = String::new();
        let mut it = self.iter().peekable();
        while let Some(lo) = it.next() {
            let mut hi = lo;
            while it.peek() == Some(&(hi + 1)) {
                hi = it.next().unwrap_or(hi);
            }
            if !out.is_empty() {
                out.push(',');
            }
            if hi == lo {
                out.push_str(&lo.to_string());
            } else {
                out.push_str(&format!("{lo}-{hi}"));
            }
        }
        out
    }

    /// The kernel's mask form, e.g. `00000000,0000ff00` (`0` for the empty set).
    pub fn to_mask(&self) -> String {
        if self.is_empty() {
            return "0".into();
        }
        let mut halves: Vec<u32> = self
            .words()
            .iter()
            .flat_map(|w| [*w as u32, (*w >> 32) as u32])
            .collect();
        while halves.len() > 1 && halves.last() == Some(&0) {
            halves.pop();
        }
        halves
            .iter()
            .rev()
            .map(|h| format!("{h:08x}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Text without trailing NULs and surrounding whitespace (as sysfs and procfs files end).
pub fn clean(text: &str) -> &str {
    text.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

fn parse_id(s: &str) -> Option<usize> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 12 {
        return None;
    }
    s.parse().ok()
}

/// One element of a cpulist: `lo-hi:used/group` (or `lo-hi`, or `n`).
struct Part {
    lo: usize,
    hi: usize,
    used: usize,
    group: usize,
}

/// Parses one element of a cpulist; the error says why (without the text).
fn parse_part(part: &str) -> Result<Part, &'static str> {
    let part = part.trim();
    if part.is_empty() {
        return Err("empty element");
    }
    let (range, stride) = match part.split_once(':') {
        Some((r, st)) => (r, Some(st)),
        None => (part, None),
    };
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (
            parse_id(a).ok_or("bad number")?,
            parse_id(b).ok_or("bad number")?,
        ),
        None => {
            let v = parse_id(range).ok_or("bad number")?;
            (v, v)
        }
    };
    if lo > hi {
        return Err("range runs backwards");
    }
    if hi > MAX_ID {
        return Err(ID_ABOVE_MAX);
    }
    let (used, group) = match stride {
        None => (1, 1),
        Some(st) => {
            let (u, g) = st.split_once('/').ok_or("stride needs used/group")?;
            let u = parse_id(u).ok_or("bad stride")?;
            let g = parse_id(g).ok_or("bad stride")?;
            if g == 0 || u > g {
                return Err("bad stride");
            }
            (u, g)
        }
    };
    Ok(Part {
        lo,
        hi,
        used,
        group,
    })
}

/// "id above MAX_ID", as the error says it.
const ID_ABOVE_MAX: &str = "id above 131072";

/// Word `i` of the set `lo..=hi`.
fn range_word(i: usize, lo: usize, hi: usize) -> u64 {
    let (start, end) = (i * 64, i * 64 + 63);
    if hi < start || lo > end {
        return 0;
    }
    let from = lo.max(start) - start;
    let width = hi.min(end) - start - from + 1;
    let ones = if width == 64 { !0 } else { (1u64 << width) - 1 };
    ones << from
}

fn split_hex(g: &str) -> String {
    let pad = (8 - g.len() % 8) % 8;
    let padded = format!("{}{g}", "0".repeat(pad));
    padded
        .as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut b = Builder::new();
        for id in iter {
            b.insert(id);
        }
        b.finish()
    }
}

impl<'a> FromIterator<&'a CpuSet> for CpuSet {
    fn from_iter<I: IntoIterator<Item = &'a CpuSet>>(iter: I) -> Self {
        let mut acc = CpuSet::new();
        for s in iter {
            acc.union_with(s);
        }
        acc
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.to_list())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({})", self.to_list())
    }
}

impl std::str::FromStr for CpuSet {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        CpuSet::parse_list(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> CpuSet {
        CpuSet::parse_list(s).unwrap()
    }

    #[test]
    fn lists_round_trip() {
        for s in ["", "0", "0-3,8-11", "1,3,5", "0-127", "63-64", "200-255"] {
            assert_eq!(l(s).to_list(), s);
        }
        assert_eq!(l(" 0-1,3\n\0\0").to_list(), "0-1,3");
        assert_eq!(l("0-7:2/4").to_list(), "0-1,4-5");
    }

    #[test]
    fn lists_reject_garbage() {
        for s in ["a", "1-", "-1", "3-1", "1,,2", "0-999999999", "1 2", "0x3"] {
            assert!(CpuSet::parse_list(s).is_err(), "{s}");
        }
    }

    #[test]
    fn masks_parse_and_print() {
        assert_eq!(CpuSet::parse_mask("ff").unwrap().to_list(), "0-7");
        assert_eq!(
            CpuSet::parse_mask("00000001,00000000\n").unwrap().to_list(),
            "32"
        );
        assert_eq!(CpuSet::parse_mask("0x0000ff00").unwrap().to_list(), "8-15");
        assert_eq!(CpuSet::parse_mask("100000000").unwrap().to_list(), "32");
        assert_eq!(l("8-15,32").to_mask(), "00000001,0000ff00");
        assert_eq!(CpuSet::new().to_mask(), "0");
        let big = l("0,100,200");
        assert_eq!(CpuSet::parse_mask(&big.to_mask()).unwrap(), big);
        assert!(CpuSet::parse_mask("xyz").is_err());
        assert!(CpuSet::parse_mask("").is_err());
        assert!(CpuSet::parse_mask("1,123456789").is_err());
    }

    #[test]
    fn parse_any_tells_forms_apart() {
        assert_eq!(CpuSet::parse_any("0-3").unwrap().to_list(), "0-3");
        assert_eq!(CpuSet::parse_any("ff").unwrap().to_list(), "0-7");
        assert_eq!(
            CpuSet::parse_any("00000000,0000000f").unwrap().to_list(),
            "0-3"
        );
        assert_eq!(CpuSet::parse_any("3").unwrap().to_list(), "3");
    }

    #[test]
    fn set_operations() {
        let a = l("0-7");
        let b = l("4-11");
        assert_eq!(a.union(&b).to_list(), "0-11");
        assert_eq!(a.intersection(&b).to_list(), "4-7");
        assert_eq!(a.difference(&b).to_list(), "0-3");
        assert!(l("1-2").is_subset(&a));
        assert!(!b.is_subset(&a));
        assert_eq!(l("64-127").intersection(&l("0-63")), CpuSet::new());
        assert_eq!(a.len(), 8);
        assert_eq!(l("5,130").last(), Some(130));
        assert_eq!(l("5,130").first(), Some(5));
        let mut c = l("0,64");
        c.remove(64);
        assert_eq!(c, l("0"));
        assert_eq!(c.words().len(), 1);
    }

    #[test]
    fn parsing_fills_words_as_inserting_did() {
        assert_eq!(l("0-4095").len(), 4096);
        assert_eq!(l("0-4095").words().len(), 64);
        // Past the stack buffer (4,096 CPUs), and at the bound.
        assert_eq!(l("5000,8191").to_list(), "5000,8191");
        assert_eq!(l("131072").to_list(), "131072");
        assert_eq!(
            CpuSet::parse_list("131073").unwrap_err().0,
            format!("\"131073\" is not a cpulist (id above {MAX_ID}; expected e.g. \"0-3,8-11\")")
        );
        // Strides, a group taking none, ranges across words.
        assert_eq!(l("0-15:1/4").to_list(), "0,4,8,12");
        assert_eq!(l("0-15:0/4"), CpuSet::new());
        assert_eq!(l("60-70,128").to_list(), "60-70,128");
        assert_eq!(l("63,64").to_list(), "63-64");
        assert_eq!(CpuSet::range(3, 2), CpuSet::new());
        assert_eq!(CpuSet::range(62, 130), l("62-130"));
    }

    #[test]
    fn shared_sets_are_copied_on_write() {
        let a = l("0,2048");
        let mut b = a.clone();
        b.insert(5);
        b.remove(2048);
        assert_eq!((a.to_list(), b.to_list()), ("0,2048".into(), "0,5".into()));
        assert_eq!(b.words().len(), 1);
        let mut c = a.clone();
        c.union_with(&l("1-3"));
        assert_eq!(
            (a.to_list(), c.to_list()),
            ("0,2048".into(), "0-3,2048".into())
        );
        // Results equal to an operand share its words.
        let online = l("0-4095");
        let core = a.intersection(&online);
        assert_eq!(core.words().as_ptr(), a.words().as_ptr());
        assert_eq!(online.union(&a).words().as_ptr(), online.words().as_ptr());
        assert_eq!(a.difference(&l("1")).words().as_ptr(), a.words().as_ptr());
        let mut d = CpuSet::new();
        d.union_with(&a);
        assert_eq!(d.words().as_ptr(), a.words().as_ptr());
        let mut e = l("0");
        e.remove(0);
        assert!(e.is_empty() && e.words().is_empty());
        assert_eq!(e, CpuSet::new());
    }

    /// Every operation against a plain model of the set, over pseudo-random sets.
    #[test]
    fn operations_match_a_model() {
        use std::collections::BTreeSet;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as usize
        };
        let list = |m: &BTreeSet<usize>| m.iter().copied().collect::<CpuSet>();
        for round in 0..300 {
            let span = [70, 300, 5000][round % 3] as u64;
            let mut ma = BTreeSet::new();
            let mut mb = BTreeSet::new();
            for _ in 0..next(40) {
                ma.insert(next(span));
            }
            for _ in 0..next(40) {
                mb.insert(next(span));
            }
            let (a, b) = (list(&ma), list(&mb));
            let text: Vec<String> = ma.iter().map(|i| i.to_string()).collect();
            assert_eq!(l(&text.join(",")), a);
            let set = |m: BTreeSet<usize>| m.into_iter().collect::<CpuSet>();
            assert_eq!(a.union(&b), set(&ma | &mb));
            assert_eq!(a.intersection(&b), set(&ma & &mb));
            assert_eq!(a.difference(&b), set(&ma - &mb));
            assert_eq!(a.is_subset(&b), ma.is_subset(&mb));
            assert_eq!(a.intersects(&b), !ma.is_disjoint(&mb));
            assert_eq!(a.len(), ma.len());
            assert_eq!(a.first(), ma.first().copied());
            assert_eq!(a.last(), ma.last().copied());
            assert_eq!(
                a.iter().collect::<Vec<_>>(),
                ma.iter().copied().collect::<Vec<_>>()
            );
            let mut c = a.clone();
            c.union_with(&b);
            assert_eq!(c, a.union(&b));
            let mut d = a.clone();
            let x = next(span);
            d.insert(x);
            d.remove(next(span));
            let mut md = ma.clone();
            md.insert(x);
            assert!(d.is_subset(&set(md)));
            assert_eq!(d.words().last().map(|w| *w != 0), d.last().map(|_| true));
            assert_eq!([&a, &b].into_iter().collect::<CpuSet>(), a.union(&b));
        }
    }
}
