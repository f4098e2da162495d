//! `CpuSet`: a set of logical CPU ids (or NUMA node ids), with the kernel's two text forms:
//! cpulists (`0-3,8-11`) and hexadecimal masks (`ff,00000000`, 32-bit words, most significant first).

use std::fmt;

/// The largest id accepted from any text. Real kernels stop far below (NR_CPUS ≤ 8192 today);
/// the bound keeps a corrupt file ("0-4294967295") from allocating gigabytes.
pub const MAX_ID: usize = 1 << 17;

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    /// Bit i of word w is id 64*w+i. Never ends with a zero word, so equality is structural.
    words: Vec<u64>,
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

impl CpuSet {
    pub fn new() -> Self {
        CpuSet { words: Vec::new() }
    }

    /// A set of one id.
    pub fn single(id: usize) -> Self {
        let mut s = CpuSet::new();
        s.insert(id);
        s
    }

    /// The ids `lo..=hi`.
    pub fn range(lo: usize, hi: usize) -> Self {
        (lo..=hi).collect()
    }

    /// From raw 64-bit words (bit i of word w is id 64*w+i), as `sched_getaffinity` gives them.
    pub fn from_words(words: &[u64]) -> Self {
        let mut s = CpuSet {
            words: words.to_vec(),
        };
        s.trim();
        s
    }

    /// The raw 64-bit words, enough to hold the highest id.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }

    pub fn insert(&mut self, id: usize) {
        let w = id / 64;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (id % 64);
    }

    pub fn remove(&mut self, id: usize) {
        if let Some(word) = self.words.get_mut(id / 64) {
            *word &= !(1 << (id % 64));
            self.trim();
        }
    }

    pub fn contains(&self, id: usize) -> bool {
        self.words
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The lowest id.
    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    /// The highest id.
    pub fn last(&self) -> Option<usize> {
        let w = self.words.len().checked_sub(1)?;
        Some(w * 64 + 63 - self.words[w].leading_zeros() as usize)
    }

    /// Ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &bits)| {
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

    fn zip_with(&self, other: &CpuSet, f: impl Fn(u64, u64) -> u64) -> CpuSet {
        let n = self.words.len().max(other.words.len());
        let get = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
        let mut s = CpuSet {
            words: (0..n)
                .map(|i| f(get(&self.words, i), get(&other.words, i)))
                .collect(),
        };
        s.trim();
        s
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

    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.difference(other).is_empty()
    }

    pub fn intersects(&self, other: &CpuSet) -> bool {
        !self.intersection(other).is_empty()
    }

    /// Parses a cpulist: `0-3,8,10-11`, also with `a-b:stride/group` as the kernel accepts.
    /// Surrounding whitespace, newlines and trailing NULs are ignored; an empty list is the empty set.
    pub fn parse_list(text: &str) -> Result<CpuSet, ParseError> {
        let t = clean(text);
        let mut s = CpuSet::new();
        if t.is_empty() {
            return Ok(s);
        }
        let bad = |why: &str| {
            ParseError(format!(
                "{t:?} is not a cpulist ({why}; expected e.g. \"0-3,8-11\")"
            ))
        };
        for part in t.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad("empty element"));
            }
            let (range, stride) = match part.split_once(':') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            let (lo, hi) = match range.split_once('-') {
                Some((a, b)) => (
                    parse_id(a).ok_or_else(|| bad("bad number"))?,
                    parse_id(b).ok_or_else(|| bad("bad number"))?,
                ),
                None => {
                    let v = parse_id(range).ok_or_else(|| bad("bad number"))?;
                    (v, v)
                }
            };
            if lo > hi {
                return Err(bad("range runs backwards"));
            }
            if hi > MAX_ID {
                return Err(bad(&format!("id above {MAX_ID}")));
            }
            let (used, group) = match stride {
                None => (1, 1),
                Some(st) => {
                    let (u, g) = st
                        .split_once('/')
                        .ok_or_else(|| bad("stride needs used/group"))?;
                    let u = parse_id(u).ok_or_else(|| bad("bad stride"))?;
                    let g = parse_id(g).ok_or_else(|| bad("bad stride"))?;
                    if g == 0 || u > g {
                        return Err(bad("bad stride"));
                    }
                    (u, g)
                }
            };
            for id in lo..=hi {
                if (id - lo) % group < used {
                    s.insert(id);
                }
            }
        }
        Ok(s)
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
        if self.words.is_empty() {
            return "0".into();
        }
        let mut halves: Vec<u32> = self
            .words
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
        let mut s = CpuSet::new();
        for id in iter {
            s.insert(id);
        }
        s
    }
}

impl<'a> FromIterator<&'a CpuSet> for CpuSet {
    fn from_iter<I: IntoIterator<Item = &'a CpuSet>>(iter: I) -> Self {
        iter.into_iter().fold(CpuSet::new(), |acc, s| acc.union(s))
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
}
