//! Row images of a rows event decoded straight into cells.
//!
//! mysql_common's row iterator builds, for every image of every row, a column list (schema,
//! table and column names copied), reads the table map's optional metadata again, and copies
//! every value out of the event: 5 % of the daemon's samples while streaming (`perf`, the e2e
//! bench). The column types, metadata and signedness here are read once per table map
//! ([`Layout`], kept with the table's schema) and each value is decoded from the event's bytes
//! where it lies. The image format is MySQL's (`log_event.cc`, as mysql_common reads it): a
//! bitmap of NULL columns over the columns present, then the present columns' values in order.
//! Only the plain case is read here — every column in both images (rowcast requires full
//! images and halts on others before reading rows) and no shared image (MySQL's partial JSON
//! updates); any other event goes through mysql_common's own iterator.

use mysql_async::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_common::io::ParseBuf;

use super::decode::decode_value;
use crate::view::row::{Row, TableSchema};
use crate::view::value::Cell;

/// How each column of a table map is read from a row image.
#[derive(Debug)]
pub struct Layout {
    columns: Vec<ColumnLayout>,
}

#[derive(Debug)]
struct ColumnLayout {
    /// The type its values are read as.
    ty: ColumnType,
    meta: Box<[u8]>,
    unsigned: bool,
}

impl Layout {
    /// The layout of a table map's columns, as mysql_common reads them for each row.
    pub fn of(tme: &TableMapEvent<'_>) -> Result<Layout, String> {
        let extractor =
            OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(|e| e.to_string())?;
        let mut signedness = extractor.iter_signedness();
        let mut columns = Vec::with_capacity(tme.columns_count() as usize);
        for i in 0..tme.columns_count() as usize {
            let ty = tme
                .get_column_type(i)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no type for column {i}"))?;
            let unsigned = ty.is_numeric_type() && signedness.next().unwrap_or(false);
            columns.push(ColumnLayout {
                ty,
                meta: tme.get_column_metadata(i).unwrap_or(&[]).into(),
                unsigned,
            });
        }
        Ok(Layout { columns })
    }
}

/// Whether [`rows`] reads this event: no shared image, every column in each image it has.
pub fn plain(rows: &RowsEventData<'_>, layout: &Layout) -> bool {
    let count = layout.columns.len();
    // An image's bitmap of present columns: one bit per column, every one set.
    let full = |(len, present): (usize, usize)| len == count && present == count;
    !matches!(rows, RowsEventData::PartialUpdateRowsEvent(_))
        && (rows.columns_before_image()).is_none_or(|b| full((b.len(), b.count_ones())))
        && (rows.columns_after_image()).is_none_or(|b| full((b.len(), b.count_ones())))
}

/// The rows of a [`plain`] event, each its before and after image as the event has them.
pub fn rows<'a>(
    rows: &'a RowsEventData<'a>,
    layout: &'a Layout,
    schema: &'a std::sync::Arc<TableSchema>,
    charsets: &'a [u16],
) -> impl Iterator<Item = Result<(Option<Row>, Option<Row>), String>> + 'a {
    let before = rows.columns_before_image().is_some();
    let after = rows.columns_after_image().is_some();
    let mut buf = ParseBuf(rows.rows_data());
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let mut image = |present: bool| {
            present
                .then(|| read_image(&mut buf, layout, schema, charsets))
                .transpose()
        };
        Some(image(before).and_then(|b| Ok((b, image(after)?))))
    })
    .fuse()
}

/// One row image: the NULL bitmap, then each column's value.
fn read_image<'a>(
    buf: &mut ParseBuf<'a>,
    layout: &'a Layout,
    schema: &std::sync::Arc<TableSchema>,
    charsets: &[u16],
) -> Result<Row, String> {
    let count = layout.columns.len();
    if count != schema.columns.len() {
        return Err(format!(
            "row image has {count} columns, table map {} (binlog_row_image must be FULL)",
            schema.columns.len()
        ));
    }
    let nulls: &[u8] = buf
        .parse(count.div_ceil(8))
        .map_err(|e| format!("NULL bitmap: {e}"))?;
    let mut cells = Vec::with_capacity(count);
    for (i, (column, read)) in schema.columns.iter().zip(&layout.columns).enumerate() {
        if nulls[i / 8] & (1 << (i % 8)) != 0 {
            cells.push(Cell::Null);
            continue;
        }
        let value: BinlogValue<'_> = buf
            .parse((read.ty, &*read.meta, read.unsigned, false))
            .map_err(|e| format!("column {}: {e}", column.name))?;
        let charset = charsets.get(i).copied().unwrap_or(0);
        let cell = decode_value(&column.kind, &value, charset)
            .map_err(|reason| format!("column {}: {reason}", column.name))?;
        cells.push(cell);
    }
    Ok(Row {
        schema: schema.clone(),
        cells,
    })
}
