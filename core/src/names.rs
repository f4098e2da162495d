//! One way to name the enums a user spells in a variable or a flag: a single table gives `name`,
//! `parse` (trimmed, any case, aliases allowed), `ALL` and the accepted names for messages.

/// `named!(Type, "VARIABLE", Variant => "name" | "alias", ...)`.
macro_rules! named {
    ($ty:ident, $var:literal, $($variant:ident => $name:literal $(| $alias:literal)*),+ $(,)?) => {
        impl $ty {
            /// Every value, in the table's order.
            pub const ALL: [$ty; <[&str]>::len(&[$(stringify!($variant)),+])] = [$($ty::$variant),+];
            /// The variable (or option) the value is read from, for messages.
            pub const VAR: &'static str = $var;

            /// The canonical name, as `parse` accepts it and messages print it.
            pub fn name(&self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The accepted names, for messages: "a, b, c".
            pub fn accepted() -> &'static str {
                const LIST: &str = concat!($($name, ", "),+);
                LIST.trim_end_matches(", ")
            }

            /// A value as the variable takes it: trimmed, in any case; the error names the
            /// variable, the value and what is accepted.
            pub fn parse(value: &str) -> $crate::Result<$ty> {
                let v = value.trim().to_ascii_lowercase();
                match v.as_str() {
                    $($name $(| $alias)* => Ok($ty::$variant),)+
                    _ => Err($crate::Error::bad_value($var, value, $ty::accepted())),
                }
            }
        }
    };
}

pub(crate) use named;
