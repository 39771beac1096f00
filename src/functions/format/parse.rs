//! A `printf` or `format` format string read into its pieces ([`super`]): text, and each
//! conversion's argument and settings.

/// A conversion's settings: `%-08.3f` or `{:*>8.3f}`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Spec {
    pub(super) fill: Option<char>,
    /// `<`, `>` or `^`; by default `>`, and `<` for a text in `format`.
    pub(super) align: Option<char>,
    /// `+` or ` ` before a number that is not negative.
    pub(super) sign: Option<char>,
    pub(super) alternate: bool,
    pub(super) zero: bool,
    pub(super) width: usize,
    /// `,` or `_` between a whole number's groups of three digits.
    pub(super) grouping: Option<char>,
    pub(super) precision: Option<usize>,
    pub(super) kind: Option<char>,
    /// `printf`'s `*` width: the argument that gives it (a negative one aligns left).
    pub(super) width_arg: Option<usize>,
    /// `printf`'s `.*` precision: the argument that gives it.
    pub(super) precision_arg: Option<usize>,
}

/// A format string's pieces: text as it is, or a conversion of an argument.
#[derive(Debug, PartialEq)]
pub(super) enum Piece {
    Text(String),
    Arg(usize, Spec),
}

/// The pieces of a C `printf` format: `%[flags][width][.precision][length]conversion`, `%%`.
pub(super) fn printf_pieces(format: &str) -> std::result::Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            text.push('%');
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.align = Some('<'),
                '+' => spec.sign = Some('+'),
                ' ' => spec.sign = spec.sign.or(Some(' ')),
                '#' => spec.alternate = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        // `*`: the width, or the precision, is the next argument's value.
        let mut from_argument = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let star = chars.next_if_eq(&'*').map(|_| next_arg);
            next_arg += usize::from(star.is_some());
            star
        };
        spec.width_arg = from_argument(&mut chars);
        if spec.width_arg.is_none() {
            spec.width = number(&mut chars).unwrap_or(0);
        }
        if chars.next_if_eq(&'.').is_some() {
            spec.precision_arg = from_argument(&mut chars);
            if spec.precision_arg.is_none() {
                spec.precision = Some(number(&mut chars).unwrap_or(0));
            }
        }
        while chars.peek().is_some_and(|c| "hlLqjzt".contains(*c)) {
            chars.next();
        }
        match chars.next() {
            Some(k @ ('d' | 'i' | 'u' | 'x' | 'X' | 'o' | 'c' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 's')) => {
                spec.kind = Some(k);
            }
            Some(k) => return Err(format!("invalid conversion \"%{k}\"")),
            None => return Err("the format ends inside a conversion".into()),
        }
        if spec.align == Some('<') {
            spec.zero = false;
        }
        within_limits(&spec)?;
        pieces.push(Piece::Text(std::mem::take(&mut text)));
        pieces.push(Piece::Arg(next_arg, spec));
        next_arg += 1;
    }
    pieces.push(Piece::Text(text));
    Ok(pieces)
}

/// The pieces of a fmt format: `{[index][:[[fill]align][sign][#][0][width][,|_][.precision]
/// [type]]}`, `{{` and `}}`.
pub(super) fn fmt_pieces(format: &str) -> std::result::Result<Vec<Piece>, String> {
    const SWITCH: &str = "cannot switch from automatic to manual argument indexing";
    let (mut automatic, mut manual) = (false, false);
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0;
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err("invalid format string: an unmatched '}'".into()),
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => return Err("invalid format string: an unclosed '{'".into()),
                    }
                }
                let (index, spec) = inner.split_once(':').unwrap_or((inner.as_str(), ""));
                let index = match index.trim() {
                    "" if manual => return Err(SWITCH.into()),
                    "" => {
                        automatic = true;
                        next_arg += 1;
                        next_arg - 1
                    }
                    _ if automatic => return Err(SWITCH.into()),
                    i => {
                        manual = true;
                        i.parse::<usize>()
                            .map_err(|_| format!("invalid format string: argument \"{i}\""))?
                    }
                };
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Arg(index, fmt_spec(spec)?));
            }
            c => text.push(c),
        }
    }
    pieces.push(Piece::Text(text));
    Ok(pieces)
}

/// A fmt conversion's settings from the text after its `:`.
fn fmt_spec(text: &str) -> std::result::Result<Spec, String> {
    let mut spec = Spec::default();
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let is_align = |c: Option<&char>| matches!(c, Some('<' | '>' | '^'));
    if is_align(chars.get(1)) {
        (spec.fill, spec.align, at) = (chars.first().copied(), chars.get(1).copied(), 2);
    } else if is_align(chars.first()) {
        (spec.align, at) = (chars.first().copied(), 1);
    }
    if let Some(&s @ ('+' | ' ' | '-')) = chars.get(at) {
        spec.sign = (s != '-').then_some(s);
        at += 1;
    }
    if chars.get(at) == Some(&'#') {
        spec.alternate = true;
        at += 1;
    }
    if chars.get(at) == Some(&'0') {
        spec.zero = true;
        at += 1;
    }
    let mut rest = chars[at..].iter().copied().peekable();
    spec.width = number(&mut rest).unwrap_or(0);
    if let Some(&g @ (',' | '_')) = rest.peek() {
        spec.grouping = Some(g);
        rest.next();
    }
    if rest.peek() == Some(&'.') {
        rest.next();
        spec.precision = Some(number(&mut rest).ok_or("invalid format string: a '.' without a precision")?);
    }
    spec.kind = rest.next();
    if let Some(c) = rest.next() {
        return Err(format!("invalid format string: '{c}' in a conversion"));
    }
    within_limits(&spec)?;
    Ok(spec)
}

/// The most characters a conversion's width or precision may ask for: a query's format cannot
/// make one value take more memory than this.
const LIMIT: usize = 100_000;

/// `spec`, refused where its width or precision is past [`LIMIT`].
pub(super) fn within_limits(spec: &Spec) -> std::result::Result<(), String> {
    for (what, n) in [("width", spec.width), ("precision", spec.precision.unwrap_or(0))] {
        if n > LIMIT {
            return Err(format!(
                "a {what} of {n} is past the {LIMIT} characters a conversion may take"
            ));
        }
    }
    Ok(())
}

/// The decimal number at the front of `chars`, if any.
fn number(chars: &mut std::iter::Peekable<impl Iterator<Item = char>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        chars.next();
    }
    n
}
