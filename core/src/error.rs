//! One error type for the whole core. Every error carries its context (the file, variable or value
//! it is about and what was expected) in a one-line message; the boundary turns it into a
//! `gpuaff:` line on stderr or a negative errno.

use std::fmt::{self, Write as _};

/// The longest message, in characters, that `Display` writes before cutting it with `…`.
pub const MAX_MESSAGE: usize = 600;

/// How much of a value a message quotes.
pub const SHOWN_BYTES: usize = 64;

/// `value` quoted for a message: whole when short, else its start and its length (so a runaway value
/// cannot flood stderr, and the message still begins with the variable it is about).
pub fn shown(value: &str) -> String {
    if value.len() <= SHOWN_BYTES {
        return format!("{value:?}");
    }
    let mut end = SHOWN_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{:?}… ({} bytes)",
        value.get(..end).unwrap_or_default(),
        value.len()
    )
}

/// What went wrong, coarsely: decides the errno at the C boundary and the CLI exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A value from the caller or the environment is malformed or out of range.
    InvalidInput,
    /// A sysfs/procfs file is missing, unreadable or malformed.
    Machine,
    /// No usable GPU (none visible, or the requested one does not exist).
    NoDevice,
    /// The machine has no NVIDIA GPU at all (or no driver), or this process was given none
    /// (`CUDA_VISIBLE_DEVICES=""`): nothing to do, which the preload keeps quiet about.
    NoGpu,
    /// The plan cannot be made (e.g. no allowed CPU anywhere near the GPU, and strict).
    Unplannable,
    /// The kernel refused a change (sched_setaffinity, set_mempolicy).
    Os,
    /// NVML could not be loaded or answered with an error.
    Nvml,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    msg: String,
    /// The OS errno behind an `Os` or `Machine` error, when there is one.
    os_errno: Option<i32>,
    /// For a value that cannot be parsed: (value, what is accepted), so that a caller can name
    /// the value's source differently (the CLI names the flag, not the variable).
    bad: Option<Box<(String, String)>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
            os_errno: None,
            bad: None,
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, msg)
    }
    pub fn machine(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Machine, msg)
    }
    pub fn no_device(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::NoDevice, msg)
    }
    pub fn no_gpu(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::NoGpu, msg)
    }
    pub fn unplannable(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unplannable, msg)
    }
    pub fn nvml(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Nvml, msg)
    }
    /// A failed system call; `errno` is the positive OS error number.
    pub fn os(errno: i32, msg: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Os,
            msg: msg.into(),
            os_errno: Some(errno),
            bad: None,
        }
    }
    /// An environment variable or option whose value cannot be parsed: names both and what is accepted.
    pub fn bad_value(name: &str, value: &str, accepted: &str) -> Self {
        let mut e = Self::invalid(Self::bad_text(name, "=", value, accepted));
        e.bad = Some(Box::new((value.to_string(), accepted.to_string())));
        e
    }
    fn bad_text(name: &str, sep: &str, value: &str, accepted: &str) -> String {
        format!(
            "{name}{sep}{} is not valid (accepted: {accepted})",
            shown(value)
        )
    }
    /// A `bad_value` error about a command-line option: names `flag` instead of the variable.
    /// Other errors are returned as they are.
    pub fn for_option(self, flag: &str) -> Self {
        match &self.bad {
            Some(b) => Error {
                msg: Self::bad_text(flag, " ", &b.0, &b.1),
                ..self
            },
            None => self,
        }
    }
    /// A file of the machine model that is missing or odd: names the file.
    pub fn file(path: &std::path::Path, what: impl fmt::Display) -> Self {
        Self::machine(format!("{}: {what}", path.display()))
    }
    pub fn with_errno(mut self, errno: i32) -> Self {
        self.os_errno = Some(errno);
        self
    }
    /// Prefixes the message with more context: `"{ctx}: {msg}"`.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.msg = format!("{ctx}: {}", self.msg);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.msg
    }
    pub fn os_errno(&self) -> Option<i32> {
        self.os_errno
    }

    /// The positive errno that stands for this error at the C boundary (callers negate it).
    pub fn errno(&self) -> i32 {
        match self.kind {
            ErrorKind::InvalidInput => libc::EINVAL,
            ErrorKind::Machine => self.os_errno.unwrap_or(libc::EIO),
            ErrorKind::NoDevice | ErrorKind::NoGpu => libc::ENODEV,
            ErrorKind::Unplannable => libc::EDOM,
            ErrorKind::Os => self.os_errno.unwrap_or(libc::EPERM),
            ErrorKind::Nvml => libc::ELIBACC,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, always: a message that arrives with newlines (a file's contents) is flattened,
        // and one that quotes a huge value is cut, so a corrupt file cannot flood stderr.
        let mut written = 0;
        for (i, line) in self.msg.lines().enumerate() {
            let sep = if i > 0 { " " } else { "" };
            for c in sep.chars().chain(line.chars()) {
                if written == MAX_MESSAGE {
                    return f.write_str("…");
                }
                f.write_char(c)?;
                written += 1;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The calling thread's `errno` after a failed system call (EIO when there is none).
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_and_errno_follows_kind() {
        let e = Error::bad_value("GPU_AFFINITY_MODE", "sokcet\n", "none, socket");
        assert!(!e.to_string().contains('\n'));
        assert!(e.to_string().contains("GPU_AFFINITY_MODE"));
        assert_eq!(e.errno(), libc::EINVAL);
        assert_eq!(Error::no_device("x").errno(), libc::ENODEV);
        assert_eq!(Error::no_gpu("x").errno(), libc::ENODEV);
        assert_eq!(Error::os(libc::ESRCH, "x").errno(), libc::ESRCH);
        assert_eq!(
            Error::machine("x").context("topology").message(),
            "topology: x"
        );
    }
}
