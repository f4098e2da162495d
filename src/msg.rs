//! Messages to the user: one `gpuaff:` line each, written straight to fd 2 with one write(2) call so
//! that lines from several processes or threads never interleave and no stdio lock is taken.

/// The longest line written, in bytes (values inside messages are already quoted short; this is the
/// backstop that keeps any message from flooding stderr).
pub const MAX_LINE: usize = 1024;

/// Writes `gpuaff: {text}\n` to stderr; a multi-line text is flattened to one line, and one longer
/// than `MAX_LINE` is cut (its start names the variable or file it is about).
pub fn line(text: &str) {
    write_all(format_line(text).as_bytes());
}

fn format_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_LINE) + 12);
    out.push_str("gpuaff: ");
    for (i, part) in text.lines().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
        if out.len() > MAX_LINE {
            break;
        }
    }
    if out.len() > MAX_LINE {
        let mut end = MAX_LINE - 3;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out.push('\n');
    out
}

fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: fd 2 and a valid buffer; a closed stderr just makes this fail.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = bytes.get(n as usize..).unwrap_or(&[]);
        } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        } else {
            return;
        }
    }
}

/// Warnings collected during one binding, each printed at most once, in order.
#[derive(Default, Debug)]
pub struct Warnings(Vec<String>);

impl Warnings {
    pub fn push(&mut self, w: impl Into<String>) {
        let w = w.into();
        if !self.0.contains(&w) {
            self.0.push(w);
        }
    }
    pub fn extend<I: IntoIterator<Item = String>>(&mut self, it: I) {
        for w in it {
            self.push(w);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
    pub fn print(&self) {
        for w in &self.0 {
            line(w);
        }
    }
    #[cfg(test)]
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_line_and_bounded() {
        assert_eq!(format_line("a\nb"), "gpuaff: a b\n");
        let long = format_line(&"é".repeat(5000));
        assert!(
            long.len() <= MAX_LINE + 1 && long.ends_with("…\n"),
            "{}",
            long.len()
        );
        assert_eq!(long.matches('\n').count(), 1);
    }

    #[test]
    fn warnings_are_deduplicated_in_order() {
        let mut w = Warnings::default();
        w.push("b");
        w.push("a");
        w.push("b");
        assert_eq!(w.as_slice(), ["b", "a"]);
    }
}
