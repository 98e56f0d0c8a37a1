//! The filter grammar of VIEWS.md: SQL-like predicates over root-table columns, evaluated with
//! SQL's three-valued logic (a row passes only when the predicate is TRUE).
//!
//! Strings compare by exact bytes (no collation); numbers compare exactly (decimal text is
//! compared digit by digit, floats as `f64`). A parse error carries the 1-based column of the
//! offending character so `check` can point at it.

use std::cmp::Ordering;

use super::row::ColumnName;
use super::value::{is_number_text, Cell, DecimalNumber, DecimalText};

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(Number),
}

/// A number literal, read once as each kind of cell compares with it (not again for every row).
#[derive(Clone, PartialEq)]
pub struct Number {
    pub text: String,
    float: Option<f64>,
    whole: Option<i128>,
    decimal: Option<DecimalNumber>,
}

/// Its text, as the literal printed when it was one (a view's definition fingerprint hashes the
/// printed filter: another form would backfill every such view on upgrade).
impl std::fmt::Debug for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.text, f)
    }
}

impl Number {
    pub fn new(text: String) -> Number {
        let trimmed = text.trim();
        Number {
            float: trimmed.parse().ok(),
            whole: trimmed.parse().ok(),
            decimal: DecimalNumber::parse(trimmed),
            text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        column: ColumnName,
        op: CmpOp,
        value: Literal,
    },
    In {
        column: ColumnName,
        values: Vec<Literal>,
        negated: bool,
    },
    IsNull {
        column: ColumnName,
        negated: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct FilterError {
    /// 1-based character column in the filter text.
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    Minus,
}

struct Lexed {
    tok: Tok,
    column: usize,
}

fn lex(text: &str) -> Result<Vec<Lexed>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, message: &str| FilterError {
        column: at + 1,
        message: message.to_string(),
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '-' => {
                i += 1;
                Tok::Minus
            }
            '=' => {
                i += 1;
                Tok::Op(CmpOp::Eq)
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Tok::Op(CmpOp::Ne)
            }
            '<' => match chars.get(i + 1) {
                Some('>') => {
                    i += 2;
                    Tok::Op(CmpOp::Ne)
                }
                Some('=') => {
                    i += 2;
                    Tok::Op(CmpOp::Le)
                }
                _ => {
                    i += 1;
                    Tok::Op(CmpOp::Lt)
                }
            },
            '>' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    Tok::Op(CmpOp::Ge)
                }
                _ => {
                    i += 1;
                    Tok::Op(CmpOp::Gt)
                }
            },
            '\'' | '"' => {
                let quote = c;
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "unterminated string literal")),
                        Some(&q) if q == quote => {
                            if chars.get(i + 1) == Some(&quote) {
                                value.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some('\\') if i + 1 < chars.len() => {
                            value.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&ch) => {
                            value.push(ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(value)
            }
            '`' => {
                let mut name = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "unterminated `quoted` column name")),
                        Some('`') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            name.push(ch);
                            i += 1;
                        }
                    }
                }
                Tok::Ident(name)
            }
            c if c.is_ascii_digit() || c == '.' => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                if j < chars.len() && (chars[j] == 'e' || chars[j] == 'E') {
                    j += 1;
                    if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                        j += 1;
                    }
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                let text: String = chars[i..j].iter().collect();
                if !is_number_text(&text) {
                    return Err(err(start, &format!("bad number {text:?}")));
                }
                i = j;
                Tok::Num(text)
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut j = i;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$')
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                i = j;
                Tok::Ident(word)
            }
            other => return Err(err(start, &format!("unexpected character {other:?}"))),
        };
        out.push(Lexed {
            tok,
            column: start + 1,
        });
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Lexed>,
    pos: usize,
    end_column: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|l| &l.tok)
    }

    fn column(&self) -> usize {
        self.toks
            .get(self.pos)
            .map_or(self.end_column, |l| l.column)
    }

    fn error(&self, message: impl Into<String>) -> FilterError {
        FilterError {
            column: self.column(),
            message: message.into(),
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if self.keyword(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), FilterError> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(&Tok::RParen, "')'")?;
            return Ok(inner);
        }
        // literal op column
        if matches!(self.peek(), Some(Tok::Str(_) | Tok::Num(_) | Tok::Minus)) {
            let value = self.literal()?;
            let op = match self.peek() {
                Some(Tok::Op(op)) => *op,
                _ => return Err(self.error("expected a comparison operator")),
            };
            self.pos += 1;
            let column = self.column_name()?;
            return Ok(Expr::Cmp {
                column,
                op: flip(op),
                value,
            });
        }
        let column = self.column_name()?;
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            if !self.eat_keyword("NULL") {
                return Err(self.error("expected NULL"));
            }
            return Ok(Expr::IsNull { column, negated });
        }
        let negated = self.eat_keyword("NOT");
        if self.eat_keyword("IN") {
            self.expect(&Tok::LParen, "'(' after IN")?;
            let mut values = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                values.push(self.literal()?);
            }
            self.expect(&Tok::RParen, "')' closing IN")?;
            return Ok(Expr::In {
                column,
                values,
                negated,
            });
        }
        if negated {
            return Err(self.error("expected IN after NOT"));
        }
        match self.peek() {
            Some(Tok::Op(op)) => {
                let op = *op;
                self.pos += 1;
                let value = self.literal()?;
                Ok(Expr::Cmp { column, op, value })
            }
            _ => Err(self.error("expected a comparison operator, IN or IS")),
        }
    }

    fn column_name(&mut self) -> Result<ColumnName, FilterError> {
        match self.peek() {
            Some(Tok::Ident(word)) if !is_reserved(word) => {
                let word = ColumnName::from(word.as_str());
                self.pos += 1;
                Ok(word)
            }
            _ => Err(self.error("expected a column name")),
        }
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        let negative = if self.peek() == Some(&Tok::Minus) {
            self.pos += 1;
            true
        } else {
            false
        };
        let lit = match self.peek() {
            Some(Tok::Num(n)) => Literal::Num(Number::new(if negative {
                format!("-{n}")
            } else {
                n.clone()
            })),
            Some(Tok::Str(s)) if !negative => Literal::Str(s.clone()),
            _ => return Err(self.error("expected a string or number literal")),
        };
        self.pos += 1;
        Ok(lit)
    }
}

fn is_reserved(word: &str) -> bool {
    ["AND", "OR", "NOT", "IN", "IS", "NULL"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, FilterError> {
        let toks = lex(text)?;
        let mut parser = Parser {
            toks,
            pos: 0,
            end_column: text.chars().count() + 1,
        };
        if parser.peek().is_none() {
            return Err(parser.error("empty filter"));
        }
        let expr = parser.or()?;
        if parser.peek().is_some() {
            return Err(parser.error("unexpected text after the end of the predicate"));
        }
        Ok(expr)
    }

    /// Every column the predicate reads, with the literals it is compared to.
    pub fn comparisons(&self, out: &mut Vec<(String, Option<Literal>)>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.comparisons(out);
                b.comparisons(out);
            }
            Expr::Not(a) => a.comparisons(out),
            Expr::Cmp { column, value, .. } => out.push((column.to_string(), Some(value.clone()))),
            Expr::In { column, values, .. } => {
                out.extend(values.iter().map(|v| (column.to_string(), Some(v.clone()))))
            }
            Expr::IsNull { column, .. } => out.push((column.to_string(), None)),
        }
    }

    /// The first column the predicate reads that `known` does not know (without allocating:
    /// projection asks this of every row image).
    pub fn first_unknown_column(&self, known: &impl Fn(&ColumnName) -> bool) -> Option<&str> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => a
                .first_unknown_column(known)
                .or_else(|| b.first_unknown_column(known)),
            Expr::Not(a) => a.first_unknown_column(known),
            Expr::Cmp { column, .. } | Expr::In { column, .. } | Expr::IsNull { column, .. } => {
                (!known(column)).then_some(column.as_str())
            }
        }
    }

    /// Three-valued evaluation: `None` is SQL's UNKNOWN. Looks up every column of the
    /// expression, whatever the first operand of AND and OR gives (`project::passes` tells a
    /// column the row lacks by it).
    pub fn eval<'a>(&self, lookup: &impl Fn(&ColumnName) -> Option<&'a Cell>) -> Option<bool> {
        match self {
            Expr::And(a, b) => match (a.eval(lookup), b.eval(lookup)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.eval(lookup), b.eval(lookup)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Not(a) => a.eval(lookup).map(|v| !v),
            Expr::IsNull { column, negated } => {
                let is_null = lookup(column).is_none_or(Cell::is_null);
                Some(is_null != *negated)
            }
            Expr::Cmp { column, op, value } => {
                let ord = compare(lookup(column)?, value)?;
                Some(match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Le => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Ge => ord != Ordering::Less,
                })
            }
            Expr::In {
                column,
                values,
                negated,
            } => {
                let cell = lookup(column)?;
                let mut unknown = false;
                for value in values {
                    match compare(cell, value) {
                        Some(Ordering::Equal) => return Some(!negated),
                        Some(_) => {}
                        None => unknown = true,
                    }
                }
                if unknown {
                    None
                } else {
                    Some(*negated)
                }
            }
        }
    }
}

/// Compares a cell with a literal; `None` when either side is NULL or they cannot be compared.
pub fn compare(cell: &Cell, literal: &Literal) -> Option<Ordering> {
    if cell.is_null() || matches!(cell, Cell::ZeroDate) {
        return None;
    }
    let (literal_text, number) = match literal {
        Literal::Str(s) => (s.as_str(), None),
        Literal::Num(n) => (n.text.as_str(), Some(n)),
    };
    match cell {
        Cell::Float(_) | Cell::Double(_) => {
            let value = match cell {
                Cell::Float(f) => f64::from(*f),
                Cell::Double(d) => *d,
                _ => unreachable!("matched above"),
            };
            let other: f64 = match number {
                Some(number) => number.float?,
                None => literal_text.trim().parse().ok()?,
            };
            value.partial_cmp(&other)
        }
        Cell::Int(_) | Cell::UInt(_) | Cell::Year(_) | Cell::Bit(_) => {
            // Whole numbers against a whole literal compare as integers, without text.
            let whole = match cell {
                Cell::Int(v) => Some(i128::from(*v)),
                Cell::UInt(v) => Some(i128::from(*v)),
                _ => None,
            };
            let other = match number {
                Some(number) => number.whole,
                None => literal_text.trim().parse::<i128>().ok(),
            };
            match (whole, other) {
                (Some(value), Some(other)) => Some(value.cmp(&other)),
                _ => compare_decimal(&cell.to_text().ok()??, literal_text.trim()),
            }
        }
        Cell::Decimal(text) => match number {
            Some(number) => compare_number(text, number),
            None => compare_decimal(text, literal_text.trim()),
        },
        Cell::DateTime(_) | Cell::Timestamp { .. } => {
            // Compare in the table form; accept SQL's `YYYY-MM-DD HH:MM:SS` literals too.
            let text = cell.to_text().ok()??;
            let text = text.trim_end_matches('Z');
            let literal = literal_text.trim().trim_end_matches('Z');
            let literal = match literal.as_bytes().get(10) {
                Some(b' ') => format!("{}T{}", &literal[..10], &literal[11..]),
                _ => literal.to_string(),
            };
            Some(text.as_bytes().cmp(literal.as_bytes()))
        }
        // Text as it is held, without the copy `to_text` makes.
        Cell::Text(text) => compare_text(text, literal),
        Cell::Enum(label) => compare_text(label, literal),
        _ => compare_text(&cell.to_text().ok()??, literal),
    }
}

fn compare_text(text: &str, literal: &Literal) -> Option<Ordering> {
    match literal {
        Literal::Str(s) => Some(text.as_bytes().cmp(s.as_bytes())),
        Literal::Num(n) => compare_number(text.trim(), n),
    }
}

/// [`compare_decimal`] with a number literal read before.
fn compare_number(text: &str, number: &Number) -> Option<Ordering> {
    if let Some(ord) = number
        .whole
        .and_then(|whole| cmp_plain_with_whole(text, whole))
    {
        return Some(ord);
    }
    Some(DecimalText::parse(text)?.cmp_number(number.decimal.as_ref()?))
}

/// A DECIMAL's text as the server writes it (`[-]digits[.digits]`, here with a whole part that
/// fits a `u64`) compared with a whole number, in one pass: `total > 0` on each row image without
/// reading the text into a [`DecimalText`] first (callgrind, `benches/cpu.rs`). `None` for any
/// other text, which the exact comparison then takes.
fn cmp_plain_with_whole(text: &str, whole: i128) -> Option<Ordering> {
    let (negative, body) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        bytes => (false, bytes),
    };
    let mut int: u64 = 0;
    let mut rest = body;
    while let [digit @ b'0'..=b'9', tail @ ..] = rest {
        int = int.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
        rest = tail;
    }
    if rest.len() == body.len() {
        return None;
    }
    let fraction = match rest {
        [] => false,
        [b'.', digits @ ..] if !digits.is_empty() => {
            let mut nonzero = false;
            for &digit in digits {
                match digit {
                    b'0' => {}
                    b'1'..=b'9' => nonzero = true,
                    _ => return None,
                }
            }
            nonzero
        }
        _ => return None,
    };
    let int = i128::from(int);
    let int = if negative { -int } else { int };
    Some(match (fraction, negative) {
        (false, _) => int.cmp(&whole),
        // Strictly between `int` and `int + 1`.
        (true, false) if int >= whole => Ordering::Greater,
        // Strictly between `int - 1` and `int`.
        (true, true) if int > whole => Ordering::Greater,
        (true, _) => Ordering::Less,
    })
}

/// Exact comparison of two decimal numbers in text (`-12.50`, `1e3`).
pub fn compare_decimal(a: &str, b: &str) -> Option<Ordering> {
    let a = DecimalText::parse(a)?;
    let b = DecimalText::parse(b)?;
    Some(a.cmp(&b))
}

crate::error::definite_errors!(FilterError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// How a literal's text compared with a cell before number literals were read once: the
    /// text parsed for each comparison (the `Str` path still does).
    fn compare_by_text(cell: &Cell, text: &str) -> Option<Ordering> {
        match cell {
            Cell::Double(d) => d.partial_cmp(&text.trim().parse::<f64>().ok()?),
            Cell::Int(v) => match text.trim().parse::<i128>() {
                Ok(other) => Some(i128::from(*v).cmp(&other)),
                Err(_) => compare_decimal(&v.to_string(), text.trim()),
            },
            Cell::Decimal(d) | Cell::Text(d) => compare_decimal(d.trim(), text.trim()),
            _ => unreachable!(),
        }
    }

    proptest! {
        /// A number literal compares with every numeric cell, and with text, as its text did.
        #[test]
        fn a_number_literal_compares_as_its_text(
            literal in "-?(0|[0-9]{1,3})(\\.[0-9]{0,3})?(e-?[0-9])?|-?[0-9]{1,40}",
            value in "-?[0-9]{1,3}(\\.[0-9]{1,3})?",
        ) {
            let number = Literal::Num(Number::new(literal.clone()));
            let float: f64 = value.parse().unwrap();
            let cells = [
                Cell::Double(float),
                Cell::Int(float as i64),
                Cell::Decimal(value.clone()),
                Cell::Text(format!(" {value}")),
            ];
            for cell in &cells {
                prop_assert_eq!(compare(cell, &number), compare_by_text(cell, &literal), "{:?}", cell);
            }
        }
    }

    proptest! {
        /// The one-pass comparison of a DECIMAL's text with a whole number answers as the exact
        /// one, or leaves the text to it.
        #[test]
        fn a_plain_decimal_compares_with_a_whole_number_exactly(
            value in "-?[0-9]{1,40}(\\.[0-9]{1,4})?|-?0{1,3}(\\.0{1,3})?|-?[0-9]{0,2}\\.?[0-9]{0,2}",
            whole in prop_oneof![-3i128..3, any::<i64>().prop_map(i128::from), -(10i128.pow(37))..10i128.pow(37)],
            near in any::<bool>(),
        ) {
            // Half the cases compare with the value's own whole part, where the fraction decides.
            let whole = match (near, value.split('.').next().and_then(|w| w.parse::<i128>().ok())) {
                (true, Some(own)) => own,
                _ => whole,
            };
            if let Some(ord) = cmp_plain_with_whole(&value, whole) {
                prop_assert_eq!(Some(ord), compare_decimal(&value, &whole.to_string()), "{} {}", value, whole);
            }
        }
    }

    #[test]
    fn a_plain_decimal_is_compared_in_one_pass_and_other_text_is_left() {
        assert_eq!(cmp_plain_with_whole("1234.50", 0), Some(Ordering::Greater));
        assert_eq!(cmp_plain_with_whole("-0.01", 0), Some(Ordering::Less));
        assert_eq!(cmp_plain_with_whole("-0.00", 0), Some(Ordering::Equal));
        assert_eq!(cmp_plain_with_whole("-2.5", -2), Some(Ordering::Less));
        assert_eq!(cmp_plain_with_whole("-2.5", -3), Some(Ordering::Greater));
        for other in [
            "",
            "-",
            ".5",
            "1.",
            "1e3",
            " 1",
            "1.2.3",
            "18446744073709551616",
        ] {
            assert_eq!(cmp_plain_with_whole(other, 0), None, "{other:?}");
        }
    }

    fn eval(filter: &str, cells: &[(&str, Cell)]) -> Option<bool> {
        let map: HashMap<&str, &Cell> = cells.iter().map(|(k, v)| (*k, v)).collect();
        Expr::parse(filter)
            .unwrap()
            .eval(&|name| map.get(name.as_str()).copied())
    }

    #[test]
    fn parses_and_evaluates() {
        let row = [
            ("status", Cell::Text("open".into())),
            ("total", Cell::Decimal("12.50".into())),
            ("n", Cell::Null),
        ];
        assert_eq!(eval("status <> 'deleted'", &row), Some(true));
        assert_eq!(eval("status != 'open'", &row), Some(false));
        assert_eq!(eval("total > 12.4 AND total < 1.3e1", &row), Some(true));
        assert_eq!(eval("total = 12.5", &row), Some(true));
        assert_eq!(eval("total >= -5", &row), Some(true));
        assert_eq!(eval("status IN ('a', 'open')", &row), Some(true));
        assert_eq!(eval("status NOT IN ('a', 'open')", &row), Some(false));
        assert_eq!(eval("n = 1", &row), None);
        assert_eq!(eval("NOT n = 1", &row), None);
        assert_eq!(eval("n = 1 OR status = 'open'", &row), Some(true));
        assert_eq!(
            eval("n IS NULL AND (status = 'x' OR 12 < total)", &row),
            Some(true)
        );
        assert_eq!(eval("n IS NOT NULL", &row), Some(false));
        assert_eq!(eval("n NOT IN (1, 2)", &row), None);
        assert_eq!(eval("status = 'OPEN'", &row), Some(false));
        assert_eq!(eval("status = 'open '", &row), Some(false));
    }

    #[test]
    fn temporal_literals() {
        use crate::view::value::DateTime;
        let dt = DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 13,
            minute: 14,
            second: 15,
            micros: 0,
            fsp: 0,
        };
        let row = [
            ("at", Cell::DateTime(dt)),
            (
                "ts",
                Cell::Timestamp {
                    secs: 1_709_212_455,
                    micros: 0,
                    fsp: 0,
                },
            ),
        ];
        assert_eq!(eval("at >= '2024-02-29'", &row), Some(true));
        assert_eq!(eval("at < '2024-02-29 13:14:16'", &row), Some(true));
        assert_eq!(eval("at = '2024-02-29T13:14:15'", &row), Some(true));
        assert_eq!(eval("ts = '2024-02-29 13:14:15'", &row), Some(true));
        assert_eq!(eval("ts > '2024-03-01'", &row), Some(false));
    }

    #[test]
    fn error_columns() {
        assert_eq!(Expr::parse("status = ").unwrap_err().column, 10);
        assert_eq!(Expr::parse("status == 'x'").unwrap_err().column, 9);
        assert_eq!(Expr::parse("a = 1 b").unwrap_err().column, 7);
        assert_eq!(Expr::parse("a = 'x").unwrap_err().column, 5);
        assert_eq!(Expr::parse("a # 1").unwrap_err().column, 3);
    }

    #[test]
    fn decimals() {
        assert_eq!(
            compare_decimal("18446744073709551615", "18446744073709551614"),
            Some(Ordering::Greater)
        );
        assert_eq!(compare_decimal("-0.5", "0"), Some(Ordering::Less));
        assert_eq!(compare_decimal("0.000", "-0"), Some(Ordering::Equal));
        assert_eq!(compare_decimal("-10", "-9.99"), Some(Ordering::Less));
        assert_eq!(compare_decimal("1e2", "100.0"), Some(Ordering::Equal));
    }
}
