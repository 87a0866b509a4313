//! The one escaping function for human output: text that came from a token (or a key set, or
//! the command line) never reaches the terminal with a character that steers it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw: every control character (C0, DEL, C1 — U+009B
/// is a one-byte CSI to many terminals, U+0085 a line break), the line and paragraph
/// separators, and the bidirectional marks, embeddings, overrides and isolates that make
/// text display in another order than it is (U+061C, U+200E, U+200F, U+202A–U+202E,
/// U+2066–U+2069).
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every character [`must_escape`] says is dangerous written as `\u{…}` (hex,
/// as Rust writes it: U+009B becomes `\u{9b}`); everything else, `\` included, unchanged.
///
/// Human output passes through this last, after any other formatting: a JSON rendering
/// has already escaped its own backslashes and C0 controls, and `{:?}` its quotes.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(must_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if must_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text of several lines, each line (split at `\n`, which only the caller's own formatting
/// puts there) passed through [`escape_controls`].
pub(crate) fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(escape_controls(input), expected, "{input:?}");
    }

    #[test]
    fn controls_and_bidi_marks_are_escaped() {
        check(
            "plain text, ünïcödé, \\ and \"",
            "plain text, ünïcödé, \\ and \"",
        );
        check("a\u{7}b\u{1b}[31m", "a\\u{7}b\\u{1b}[31m");
        check("\n\t\r\0", "\\u{a}\\u{9}\\u{d}\\u{0}");
        check(
            "\u{7f}\u{80}\u{85}\u{9b}\u{9f}",
            "\\u{7f}\\u{80}\\u{85}\\u{9b}\\u{9f}",
        );
        check(
            "\u{202a}\u{202e}\u{2066}\u{2069}",
            "\\u{202a}\\u{202e}\\u{2066}\\u{2069}",
        );
        check("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}");
        check("\u{2028}\u{2029}", "\\u{2028}\\u{2029}");
        // Neighbours of the escaped ranges stay as they are.
        check(
            "\u{a0}\u{2027}\u{2065}\u{206a}",
            "\u{a0}\u{2027}\u{2065}\u{206a}",
        );
    }

    #[test]
    fn lines_keep_their_breaks() {
        assert_eq!(escape_lines("a\u{9b}\nb\r\n"), "a\\u{9b}\nb\\u{d}\n");
    }

    #[test]
    fn clean_text_is_not_copied() {
        assert!(matches!(escape_controls("alice"), Cow::Borrowed("alice")));
    }
}
