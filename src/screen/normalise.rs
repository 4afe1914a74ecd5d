//! From a name as published to the tokens that screening compares.
//!
//! The steps, in order:
//!
//! 1. Unicode compatibility decomposition (NFKD), so that full-width letters, ligatures and
//!    precomposed accents become plain letters followed by combining marks.
//! 2. Combining marks are dropped and every remaining letter or digit is transliterated to
//!    ASCII (Cyrillic, Greek, Arabic, CJK ... through `deunicode`): "Müller" becomes
//!    "Muller", "Мюллер" becomes "Miuller".
//! 3. Lower case; apostrophes are removed inside words ("SA'ID" is "said"); a dot between
//!    single letters joins them ("L.L.C." is "llc", "S.A." is "sa"); every other character
//!    that is not a letter or a digit separates tokens ("AL-QAIDA" is "al", "qaida").
//! 4. Legal-form words ("llc", "gmbh", "ooo", "ltd" ...) are set aside, unless nothing else
//!    would remain.
//!
//! A name yields at most [`MAX_TOKENS`] tokens of at most [`MAX_TOKEN_LEN`] bytes each, so
//! any input, however long, costs a bounded amount of matching work.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// Most tokens kept from one name; the rest are ignored.
pub const MAX_TOKENS: usize = 32;

/// Longest token kept, in bytes (tokens are ASCII); longer tokens are cut.
pub const MAX_TOKEN_LEN: usize = 48;

/// Words that name a legal form of company rather than the company, once normalised (so
/// "L.L.C." and "llc" are one entry). Sorted, for binary search.
const LEGAL_FORMS: &[&str] = &[
    "ag",
    "ao",
    "bhd",
    "bv",
    "cjsc",
    "co",
    "company",
    "corp",
    "corporation",
    "fz",
    "fzc",
    "fzco",
    "fze",
    "gmbh",
    "inc",
    "incorporated",
    "jsc",
    "kft",
    "kg",
    "limited",
    "llc",
    "llp",
    "lp",
    "ltd",
    "ltda",
    "nv",
    "oao",
    "ojsc",
    "ooo",
    "oy",
    "oyj",
    "pao",
    "pjsc",
    "plc",
    "pte",
    "pty",
    "sa",
    "sal",
    "sarl",
    "sas",
    "sdn",
    "spa",
    "srl",
    "sro",
    "tov",
    "zao",
];

/// A name broken into tokens, with what normalisation did to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Analysis {
    /// Tokens compared by screening, in the order of the name.
    pub tokens: Vec<String>,
    /// Legal-form words that were set aside, normalised ("llc").
    pub legal_forms: Vec<String>,
    /// Whether a letter outside ASCII was transliterated or lost an accent.
    pub transliterated: bool,
}

/// The normalised token form of `name`: what screening compares, legal-form words removed.
///
/// ```
/// use entente::screen::normalise;
/// assert_eq!(normalise("Müller-Lüdenscheidt GmbH"), ["muller", "ludenscheidt"]);
/// assert_eq!(normalise("SA'ID, Hafiz"), ["said", "hafiz"]);
/// ```
pub fn normalise(name: &str) -> Vec<String> {
    analyse(name).tokens
}

/// Normalises `name` and records what was set aside (see the module documentation).
pub(crate) fn analyse(name: &str) -> Analysis {
    let (ascii, transliterated) = to_ascii(name);
    let words = tokenise(&ascii);
    let (legal, rest): (Vec<String>, Vec<String>) =
        words.into_iter().partition(|w| is_legal_form(w));
    if rest.is_empty() {
        // A name made only of legal-form words ("Limited") is matched on those words.
        return Analysis {
            tokens: legal,
            legal_forms: Vec::new(),
            transliterated,
        };
    }
    Analysis {
        tokens: rest,
        legal_forms: legal,
        transliterated,
    }
}

/// Whether the normalised word `word` is a legal form of company.
pub(crate) fn is_legal_form(word: &str) -> bool {
    LEGAL_FORMS.binary_search(&word).is_ok()
}

/// NFKD, combining marks dropped, letters and digits transliterated to ASCII; any other
/// character is kept if it is ASCII and becomes a space if not. Returns the text and
/// whether anything outside ASCII was met.
fn to_ascii(name: &str) -> (String, bool) {
    let mut out = String::with_capacity(name.len());
    let mut transliterated = false;
    for c in name.nfkd() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        transliterated = true;
        if is_combining_mark(c) {
            continue;
        }
        if is_apostrophe(c) {
            out.push('\'');
        } else if c.is_alphanumeric() {
            // A letter with no ASCII form (rare scripts) separates words rather than
            // vanishing silently into its neighbours.
            out.push_str(deunicode::deunicode_char(c).unwrap_or(" "));
        } else {
            // Symbols, emoji and non-ASCII punctuation: separators, never words.
            out.push(' ');
        }
    }
    (out, transliterated)
}

/// Apostrophe-like characters outside ASCII, removed inside words like `'`.
fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\u{2018}' | '\u{2019}' | '\u{02BC}' | '\u{02B9}' | '\u{00B4}' | '\u{02BF}'
    )
}

/// Splits ASCII text into lower-case tokens (see the module documentation).
fn tokenise(ascii: &str) -> Vec<String> {
    let bytes = ascii.as_bytes();
    let mut tokens = Vec::new();
    let mut current = String::new();
    // Letters since the token started or since the last dot that joined.
    let mut segment = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_alphanumeric() {
            if current.len() < MAX_TOKEN_LEN {
                current.push(b.to_ascii_lowercase() as char);
            }
            segment += 1;
        } else if b == b'\'' || b == b'`' {
            // Removed inside a word; a no-op between words.
        } else if b == b'.' && segment == 1 && bytes.get(i + 1).is_some_and(u8::is_ascii_alphabetic)
        {
            segment = 0;
        } else {
            finish(&mut tokens, &mut current);
            segment = 0;
        }
        if tokens.len() == MAX_TOKENS {
            return tokens;
        }
    }
    finish(&mut tokens, &mut current);
    tokens
}

/// Moves a non-empty `current` token onto `tokens`.
fn finish(tokens: &mut Vec<String>, current: &mut String) {
    if !current.is_empty() {
        tokens.push(std::mem::take(current));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_forms_are_sorted_for_binary_search() {
        assert!(LEGAL_FORMS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn case_is_folded() {
        assert_eq!(normalise("JOHN Smith"), normalise("john SMITH"));
        assert_eq!(normalise("JOHN Smith"), ["john", "smith"]);
    }

    #[test]
    fn accents_are_stripped() {
        assert_eq!(normalise("Müller"), ["muller"]);
        assert_eq!(normalise("José Ñúñez"), ["jose", "nunez"]);
        assert_eq!(normalise("Ørsted Ærø"), ["orsted", "aero"]);
        assert!(analyse("Müller").transliterated);
        assert!(!analyse("Muller").transliterated);
    }

    #[test]
    fn compatibility_forms_are_decomposed() {
        // Full-width letters and a ligature.
        assert_eq!(normalise("ＡＣＭＥ ﬁnance"), ["acme", "finance"]);
        // Decomposed and precomposed accents agree.
        assert_eq!(normalise("Mu\u{0308}ller"), normalise("M\u{00FC}ller"));
    }

    #[test]
    fn other_scripts_are_transliterated() {
        assert_eq!(normalise("Владимир Путин"), ["vladimir", "putin"]);
        assert_eq!(normalise("ΑΘΗΝΑ"), ["athena"]);
        let arabic = normalise("محمد");
        assert_eq!(arabic.len(), 1);
        assert!(arabic[0].is_ascii() && !arabic[0].is_empty());
    }

    #[test]
    fn punctuation_separates_and_apostrophes_join() {
        assert_eq!(normalise("AL-QAIDA"), ["al", "qaida"]);
        assert_eq!(normalise("SA'ID, Hafiz"), ["said", "hafiz"]);
        assert_eq!(normalise("O\u{2019}Brien"), ["obrien"]);
        assert_eq!(normalise("(Smith) / [John]"), ["smith", "john"]);
    }

    #[test]
    fn dotted_letters_join_but_initials_stay() {
        assert_eq!(normalise("J. Smith"), ["j", "smith"]);
        assert_eq!(normalise("U.S.A. Trading"), ["usa", "trading"]);
        assert_eq!(normalise("St.Petersburg"), ["st", "petersburg"]);
    }

    #[test]
    fn legal_forms_are_set_aside() {
        for name in [
            "Acme LLC",
            "Acme L.L.C.",
            "ACME GmbH",
            "Acme Co., Ltd.",
            "Acme Limited",
            "OOO Acme",
            "ООО Acme",
            "Acme S.A.",
            "Acme SA",
            "Acme AG",
            "PJSC Acme",
            "Acme Inc.",
            "Acme Corp",
            "Acme FZE",
            "Acme FZCO",
            "Acme LLP",
            "Acme PLC",
            "OAO Acme",
            "ZAO Acme",
            "JSC Acme",
        ] {
            assert_eq!(normalise(name), ["acme"], "{name}");
        }
        let a = analyse("Acme Co., Ltd.");
        assert_eq!(a.legal_forms, ["co", "ltd"]);
    }

    #[test]
    fn a_name_of_only_legal_forms_keeps_them() {
        assert_eq!(normalise("Limited"), ["limited"]);
        assert!(analyse("Limited").legal_forms.is_empty());
    }

    #[test]
    fn odd_input_yields_few_or_no_tokens() {
        assert!(normalise("").is_empty());
        assert!(normalise(" .,;-!? ").is_empty());
        assert!(normalise("🦄🔥").is_empty());
        assert_eq!(normalise("Acme 🦄 Trading"), ["acme", "trading"]);
        let long = "x".repeat(10_000);
        assert_eq!(normalise(&long), ["x".repeat(MAX_TOKEN_LEN)]);
        let many = "ab ".repeat(5_000);
        assert_eq!(normalise(&many).len(), MAX_TOKENS);
    }
}
