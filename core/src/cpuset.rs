//! `CpuSet`: a set of logical CPU ids (or NUMA node ids), with the kernel's two text forms:
//! cpulists (`0-3,8-11`) and hexadecimal masks (`ff,00000000`, 32-bit words, most significant first).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The largest id accepted from any text. Real kernels stop far below (NR_CPUS ≤ 8192 today);
/// the bound keeps a corrupt file ("0-4294967295") from allocating gigabytes.
pub const MAX_ID: usize = 1 << 17;

/// Words kept on the stack while a set is built from unordered ids: 4,096 CPUs.
const STACK_WORDS: usize = 64;

/// Ids kept inline, without an allocation: a core's threads (two on x86, four on some), a small
/// binding. Such a set costs no heap and is as cheap to intersect at 4,096 CPUs as at 16; a set of
/// words as wide as the machine per core was most of a big machine's load time and page faults.
const FEW: usize = 4;

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    /// Canonical (so equality is structural): a set of up to `FEW` ids is `Few`, a larger one
    /// `Words`.
    repr: Repr,
}

#[derive(Clone, Default, PartialEq, Eq, Hash)]
enum Repr {
    #[default]
    Empty,
    /// 1..=FEW ids, ascending, in `ids[..n]`; the other slots 0.
    Few { n: u8, ids: [u32; FEW] },
    /// More than FEW ids: bit i of word w is id 64*w+i, never ending with a zero word. Shared and
    /// copied on write: a package set handed to each CPU it names, or an intersection that changes
    /// nothing, costs a reference count, not a copy of a set as wide as the machine.
    Words(Arc<[u64]>),
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

/// The ids of a set, ascending: inline ones first, then the words' bits (one of the two is empty).
struct Iter<'a> {
    ids: std::slice::Iter<'a, u32>,
    words: &'a [u64],
    next_word: usize,
    base: usize,
    bits: u64,
}

impl Iterator for Iter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if let Some(&id) = self.ids.next() {
            return Some(id as usize);
        }
        while self.bits == 0 {
            self.bits = *self.words.get(self.next_word)?;
            self.base = self.next_word * 64;
            self.next_word += 1;
        }
        let i = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(self.base + i)
    }
}

impl CpuSet {
    pub fn new() -> Self {
        CpuSet { repr: Repr::Empty }
    }

    /// A set of one id.
    pub fn single(id: usize) -> Self {
        CpuSet::from_sorted(&[id])
    }

    /// The ids `lo..=hi`.
    pub fn range(lo: usize, hi: usize) -> Self {
        if lo > hi {
            return CpuSet::new();
        }
        CpuSet::from_fn(hi / 64 + 1, |i| range_word(i, lo, hi))
    }

    /// From ascending, distinct ids.
    pub(crate) fn from_sorted(ids: &[usize]) -> Self {
        let mut few = [0u32; FEW];
        if ids.is_empty() {
            return CpuSet::new();
        }
        if ids.len() <= FEW
            && few
                .iter_mut()
                .zip(ids)
                .all(|(slot, &id)| u32::try_from(id).map(|v| *slot = v).is_ok())
        {
            return CpuSet {
                repr: Repr::Few {
                    n: ids.len() as u8,
                    ids: few,
                },
            };
        }
        let last = ids.last().copied().unwrap_or(0);
        let mut words = vec![0u64; last / 64 + 1];
        for &id in ids {
            if let Some(w) = words.get_mut(id / 64) {
                *w |= 1 << (id % 64);
            }
        }
        CpuSet {
            repr: Repr::Words(words.into()),
        }
    }

    /// From raw 64-bit words (bit i of word w is id 64*w+i), as `sched_getaffinity` gives them.
    pub fn from_words(words: &[u64]) -> Self {
        let len = trimmed_len(words);
        CpuSet::from_fn(len, |i| word(words, i))
    }

    /// The set whose word i is `f(i)` for i < `len`: inline when it has `FEW` ids or fewer, else
    /// one allocation, trimmed.
    fn from_fn(len: usize, f: impl Fn(usize) -> u64) -> Self {
        let mut few = [0usize; FEW];
        let (mut n, mut top) = (0, 0);
        for i in 0..len {
            let mut bits = f(i);
            if bits != 0 {
                top = i + 1;
            }
            while bits != 0 && n <= FEW {
                if let Some(slot) = few.get_mut(n) {
                    *slot = i * 64 + bits.trailing_zeros() as usize;
                }
                n += 1;
                bits &= bits - 1;
            }
        }
        match few.get(..n) {
            Some(ids) => CpuSet::from_sorted(ids),
            None => CpuSet {
                repr: Repr::Words((0..top).map(f).collect()),
            },
        }
    }

    /// The raw 64-bit words, enough to hold the highest id: borrowed for a set of more than
    /// `FEW` ids, built for a smaller one (a binding keeps its own; see the hook's code).
    pub fn words(&self) -> Cow<'_, [u64]> {
        match &self.repr {
            Repr::Words(w) => Cow::Borrowed(w),
            _ => Cow::Owned((0..self.word_len()).map(|i| self.word_at(i)).collect()),
        }
    }

    /// How many words `words()` has.
    pub fn word_len(&self) -> usize {
        match &self.repr {
            Repr::Words(w) => w.len(),
            _ => self.last().map_or(0, |l| l / 64 + 1),
        }
    }

    /// Word `i` of `words()`, without building them.
    fn word_at(&self, i: usize) -> u64 {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Few { .. } => self
                .few()
                .iter()
                .filter(|&&id| id as usize / 64 == i)
                .fold(0, |w, &id| w | 1 << (id % 64)),
            Repr::Words(w) => word(w, i),
        }
    }

    /// The inline ids (empty for a set of words).
    fn few(&self) -> &[u32] {
        match &self.repr {
            Repr::Few { n, ids } => ids.get(..usize::from(*n)).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The ids of an inline set that `keep` keeps (any set: the general path for words).
    fn filter(&self, keep: impl Fn(usize) -> bool) -> CpuSet {
        if let Repr::Words(_) = self.repr {
            return self.iter().filter(|&id| keep(id)).collect();
        }
        let mut out = [0usize; FEW];
        let mut n = 0;
        for id in self.iter() {
            if keep(id) {
                if let Some(slot) = out.get_mut(n) {
                    *slot = id;
                    n += 1;
                }
            }
        }
        if n == self.few().len() {
            // All kept (a core within the online CPUs): the set itself.
            return self.clone();
        }
        CpuSet::from_sorted(out.get(..n).unwrap_or(&[]))
    }

    pub fn insert(&mut self, id: usize) {
        if self.contains(id) {
            return;
        }
        let (w, bit) = (id / 64, 1u64 << (id % 64));
        if !matches!(self.repr, Repr::Words(_)) {
            let mut ids = [0usize; FEW + 1];
            let mut n = 0;
            for (slot, old) in ids.iter_mut().zip(self.iter()) {
                *slot = old;
                n += 1;
            }
            if let Some(slot) = ids.get_mut(n) {
                *slot = id;
                n += 1;
            }
            let ids = ids.get_mut(..n).unwrap_or_default();
            ids.sort_unstable();
            *self = CpuSet::from_sorted(ids);
            return;
        }
        if let Some(slot) = self.unshared_word(w) {
            *slot |= bit;
            return;
        }
        // Shared, or growing: one copy.
        let len = self.word_len().max(w + 1);
        let old = &*self;
        *self = CpuSet::from_fn(len, |i| old.word_at(i) | if i == w { bit } else { 0 });
    }

    pub fn remove(&mut self, id: usize) {
        if !self.contains(id) {
            return;
        }
        let (w, bit) = (id / 64, 1u64 << (id % 64));
        // In place unless shared, or clearing the last word (which trims it), or leaving few ids.
        if w + 1 < self.word_len() && self.len() > FEW + 1 {
            if let Some(slot) = self.unshared_word(w) {
                *slot &= !bit;
                return;
            }
        }
        let old = &*self;
        *self = CpuSet::from_fn(old.word_len(), |i| {
            old.word_at(i) & if i == w { !bit } else { !0 }
        });
    }

    /// Word `w`, writable in place: None when the words are shared, inline, or `w` is past them,
    /// and the caller makes its own copy.
    fn unshared_word(&mut self, w: usize) -> Option<&mut u64> {
        match &mut self.repr {
            Repr::Words(words) => Arc::get_mut(words).and_then(|words| words.get_mut(w)),
            _ => None,
        }
    }

    pub fn contains(&self, id: usize) -> bool {
        match &self.repr {
            Repr::Empty => false,
            Repr::Few { .. } => self.few().iter().any(|&x| x as usize == id),
            Repr::Words(w) => word(w, id / 64) & (1 << (id % 64)) != 0,
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Words(w) => w.iter().map(|w| w.count_ones() as usize).sum(),
            _ => self.few().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.repr, Repr::Empty)
    }

    /// The lowest id.
    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    /// The highest id.
    pub fn last(&self) -> Option<usize> {
        match &self.repr {
            Repr::Words(words) => {
                let w = words.len().checked_sub(1)?;
                Some(w * 64 + 63 - words.get(w)?.leading_zeros() as usize)
            }
            _ => self.few().last().map(|&id| id as usize),
        }
    }

    /// Ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let words: &[u64] = match &self.repr {
            Repr::Words(w) => w,
            _ => &[],
        };
        Iter {
            ids: self.few().iter(),
            words,
            next_word: 0,
            base: 0,
            bits: 0,
        }
    }

    /// The set of `f(a, b)` word by word; `self` or `other` itself (shared, not copied) when the
    /// result equals it.
    fn zip_with(&self, other: &CpuSet, f: impl Fn(u64, u64) -> u64) -> CpuSet {
        match (&self.repr, &other.repr) {
            // The sets of the machine's size: straight over the slices.
            (Repr::Words(a), Repr::Words(b)) => self.zip_words(
                other,
                a.len().max(b.len()),
                |i| word(a, i),
                |i| word(b, i),
                f,
            ),
            _ => {
                let len = self.word_len().max(other.word_len());
                self.zip_words(other, len, |i| self.word_at(i), |i| other.word_at(i), f)
            }
        }
    }

    /// `zip_with` over words `a(i)` of `self` and `b(i)` of `other`, for i < `len`.
    fn zip_words(
        &self,
        other: &CpuSet,
        len: usize,
        a: impl Fn(usize) -> u64,
        b: impl Fn(usize) -> u64,
        f: impl Fn(u64, u64) -> u64,
    ) -> CpuSet {
        // One pass for whether the result is an operand, then at most one allocation.
        let (mut is_a, mut is_b) = (true, true);
        for i in 0..len {
            let (x, y) = (a(i), b(i));
            let r = f(x, y);
            is_a &= r == x;
            is_b &= r == y;
            if !is_a && !is_b {
                break;
            }
        }
        if is_a {
            self.clone()
        } else if is_b {
            other.clone()
        } else {
            CpuSet::from_fn(len, |i| f(a(i), b(i)))
        }
    }

    pub fn union(&self, other: &CpuSet) -> CpuSet {
        self.zip_with(other, |a, b| a | b)
    }

    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        match (&self.repr, &other.repr) {
            (Repr::Words(_), Repr::Words(_)) => self.zip_with(other, |a, b| a & b),
            // An inline set on either side: its ids, looked up in the other.
            (Repr::Words(_), _) => other.filter(|id| self.contains(id)),
            _ => self.filter(|id| other.contains(id)),
        }
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        match &self.repr {
            Repr::Words(_) => self.zip_with(other, |a, b| a & !b),
            _ => self.filter(|id| !other.contains(id)),
        }
    }

    /// `self = self ∪ other`, in place when `self` is not shared and wide enough.
    pub fn union_with(&mut self, other: &CpuSet) {
        if other.is_subset(self) {
            return;
        }
        let len = other.word_len();
        if let Repr::Words(a) = &mut self.repr {
            if let Some(a) = Arc::get_mut(a).filter(|a| a.len() >= len) {
                match &other.repr {
                    Repr::Words(b) => a.iter_mut().zip(b.iter()).for_each(|(x, y)| *x |= y),
                    _ => {
                        for id in other.iter() {
                            if let Some(w) = a.get_mut(id / 64) {
                                *w |= 1 << (id % 64);
                            }
                        }
                    }
                }
                return;
            }
        }
        *self = self.union(other);
    }

    pub fn is_subset(&self, other: &CpuSet) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Words(a), Repr::Words(b)) => {
                a.iter().enumerate().all(|(i, &x)| x & !word(b, i) == 0)
            }
            // More than FEW ids are in no set of FEW or fewer.
            (Repr::Words(_), _) => false,
            _ => self.few().iter().all(|&id| other.contains(id as usize)),
        }
    }

    pub fn intersects(&self, other: &CpuSet) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Words(a), Repr::Words(b)) => a.iter().zip(b.iter()).any(|(x, y)| x & y != 0),
            (Repr::Words(_), _) => other.few().iter().any(|&id| self.contains(id as usize)),
            _ => self.few().iter().any(|&id| other.contains(id as usize)),
        }
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

/// Id (a CPU) → index: the lookup table the reader, the topology build and the planner keep
/// instead of searching their records or groups per CPU. Four bytes an id.
#[derive(Clone, Debug, Default)]
pub struct IdTable(Vec<u32>);

impl IdTable {
    const NONE: u32 = u32::MAX;

    /// Ids below `len`, none set.
    pub fn new(len: usize) -> IdTable {
        IdTable(vec![Self::NONE; len])
    }

    /// Each id below `len` of `groups[i]` → i (a later group wins an id two share).
    pub fn of_groups<'a>(len: usize, groups: impl Iterator<Item = &'a CpuSet>) -> IdTable {
        let mut t = IdTable::new(len);
        for (i, g) in groups.enumerate() {
            let i = u32::try_from(i).unwrap_or(Self::NONE);
            for id in g.iter() {
                if let Some(slot) = t.0.get_mut(id) {
                    *slot = i;
                }
            }
        }
        t
    }

    pub fn get(&self, id: usize) -> Option<usize> {
        self.0
            .get(id)
            .filter(|&&v| v != Self::NONE)
            .map(|&v| v as usize)
    }

    /// `id`'s index, set to `index` first when it has none. None when `id` is past the table or
    /// `index` does not fit.
    pub fn get_or_set(&mut self, id: usize, index: usize) -> Option<usize> {
        let slot = self.0.get_mut(id)?;
        if *slot == Self::NONE {
            *slot = u32::try_from(index).ok().filter(|&v| v != Self::NONE)?;
        }
        Some(*slot as usize)
    }
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        // The first FEW + 1 ids in a small array: a set of few ids (a core, a filtered core) is
        // built without the words' buffer.
        let mut iter = iter.into_iter();
        let mut few = [0usize; FEW + 1];
        let mut n = 0;
        for (slot, id) in few.iter_mut().zip(iter.by_ref()) {
            *slot = id;
            n += 1;
        }
        if n <= FEW {
            let ids = few.get_mut(..n).unwrap_or_default();
            ids.sort_unstable();
            let mut kept = 0;
            for i in 0..ids.len() {
                if i == 0 || ids.get(i) != ids.get(kept - 1) {
                    ids.swap(kept, i);
                    kept += 1;
                }
            }
            return CpuSet::from_sorted(ids.get(..kept).unwrap_or_default());
        }
        let mut b = Builder::new();
        for id in few.into_iter().chain(iter) {
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
        let a = l("0-4,2048");
        let mut b = a.clone();
        b.insert(5);
        b.remove(2048);
        assert_eq!(
            (a.to_list(), b.to_list()),
            ("0-4,2048".into(), "0-5".into())
        );
        assert_eq!(b.words().len(), 1);
        let mut c = a.clone();
        c.union_with(&l("1-7"));
        assert_eq!(
            (a.to_list(), c.to_list()),
            ("0-4,2048".into(), "0-7,2048".into())
        );
        // Results equal to an operand share its words.
        let online = l("0-4095");
        let ptr = |s: &CpuSet| s.words().as_ptr();
        assert_eq!(ptr(&a.intersection(&online)), ptr(&a));
        assert_eq!(ptr(&online.union(&a)), ptr(&online));
        assert_eq!(ptr(&a.difference(&l("7"))), ptr(&a));
        assert_eq!(ptr(&online.union(&l("5,2048"))), ptr(&online));
        let mut d = CpuSet::new();
        d.union_with(&a);
        assert_eq!(ptr(&d), ptr(&a));
        let mut e = l("0");
        e.remove(0);
        assert!(e.is_empty() && e.words().is_empty());
        assert_eq!(e, CpuSet::new());
    }

    /// Sets of up to FEW ids are kept inline, whatever made them, so equal sets compare equal.
    #[test]
    fn few_ids_are_inline_and_canonical() {
        let core = l("7,2055");
        assert!(matches!(core.repr, Repr::Few { n: 2, .. }));
        assert_eq!(core.words().len(), 2055 / 64 + 1);
        assert_eq!(core.intersection(&l("0-4095")), core);
        let from_words = CpuSet::from_words(&core.words());
        assert_eq!(from_words, core);
        let mut wide = l("0-4");
        assert!(matches!(wide.repr, Repr::Words(_)));
        wide.remove(4);
        assert!(matches!(wide.repr, Repr::Few { n: 4, .. }));
        assert_eq!(wide, l("0-3"));
        wide.insert(100);
        assert!(matches!(wide.repr, Repr::Words(_)));
        assert_eq!(wide.to_list(), "0-3,100");
        assert_eq!(l("0-9").difference(&l("2-9")), l("0-1"));
        assert!(matches!(
            l("0-9").intersection(&l("8-20")).repr,
            Repr::Few { n: 2, .. }
        ));
        assert_eq!(l("1,3").union(&l("2,4")), l("1-4"));
        assert!(matches!(l("1,3").union(&l("2,4,5")).repr, Repr::Words(_)));
        assert_eq!(CpuSet::range(5, 8), l("5-8"));
        assert_eq!(CpuSet::single(131_072).to_mask().len(), 4097 * 9 - 1);
        // A set that fits no u32 id stays correct (the words' path).
        assert!(!l("3").contains(3 + (1 << 32)));
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
        for round in 0..600 {
            let span = [70, 300, 5000][round % 3] as u64;
            // Half the rounds around the inline size (FEW ids), where sets change form.
            let most = if round % 2 == 0 { 40 } else { 8 };
            let mut ma = BTreeSet::new();
            let mut mb = BTreeSet::new();
            for _ in 0..next(most) {
                ma.insert(next(span));
            }
            for _ in 0..next(most) {
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
            // Every form of a set is the canonical one: from words, parsed, mask round trip.
            assert_eq!(CpuSet::from_words(&a.words()), a);
            assert_eq!(CpuSet::parse_mask(&a.to_mask()).unwrap(), a);
            let mut e = a.clone();
            for id in mb.iter() {
                e.insert(*id);
            }
            assert_eq!(e, a.union(&b));
            for id in ma.iter() {
                e.remove(*id);
            }
            assert_eq!(e, b.difference(&a));
            let mut f = a.clone();
            f.union_with(&b);
            f.union_with(&a);
            assert_eq!(f, set(&ma | &mb));
        }
    }
}
