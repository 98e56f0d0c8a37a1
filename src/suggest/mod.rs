//! `rowcast suggest`: a single-table design proposed from a database's `information_schema`
//! (`schema.rs` reads it, `design.rs` decides, `render.rs` writes the files): `rowcast.toml`,
//! one view spec per proposed view under `views/`, and `SUGGESTIONS.md` explaining each choice.

pub mod design;
mod render;
pub mod schema;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error("{0}")]
    Refused(String),
    #[error("reading information_schema")]
    Source(#[from] mysql_async::Error),
    #[error("{0}")]
    Io(PathBuf, #[source] std::io::Error),
}

pub struct SuggestRequest {
    pub source_url: String,
    pub database: String,
    /// Only these tables (all when empty).
    pub tables: Vec<String>,
    pub out: PathBuf,
    /// The DynamoDB table of every view (default: the database's name).
    pub dynamodb_table: Option<String>,
    /// Written to `rowcast.toml`'s `[dynamodb] endpoint_url` (DynamoDB Local).
    pub dynamodb_endpoint_url: Option<String>,
}

/// What was written.
pub struct Suggested {
    pub plan: design::Plan,
    pub files: Vec<PathBuf>,
}

/// A DynamoDB table name from a database name: 3–255 of `A-Za-z0-9_.-`.
fn table_name(database: &str) -> String {
    let mut name: String = database
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' | '.' => c,
            _ => '_',
        })
        .collect();
    while name.len() < 3 {
        name.push('_');
    }
    name
}

pub async fn suggest(request: &SuggestRequest) -> Result<Suggested, SuggestError> {
    if std::fs::read_dir(&request.out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(SuggestError::Refused(format!(
            "{}: not empty (suggest writes into an empty or new directory)",
            request.out.display()
        )));
    }
    let opts = mysql_async::Opts::from_url(&request.source_url)
        .map_err(|e| SuggestError::Refused(format!("--source: {e}")))?;
    let mut conn = mysql_async::Conn::new(opts).await?;
    let mut tables = schema::read(&mut conn, &request.database, &request.tables).await?;
    let _ = conn.disconnect().await;
    if tables.is_empty() {
        return Err(SuggestError::Refused(format!(
            "database {} has no base table{} (or this user cannot see them)",
            request.database,
            if request.tables.is_empty() {
                ""
            } else {
                " of those named"
            }
        )));
    }
    design::infer_foreign_keys(&mut tables);
    let plan = design::plan(&tables);
    let table = request
        .dynamodb_table
        .clone()
        .unwrap_or_else(|| table_name(&request.database));
    let mut files = Vec::new();
    let views = request.out.join("views");
    create_dir(&views)?;
    for view in &plan.views {
        let path = views.join(format!("{}.toml", view.name));
        write(&path, render::view_file(view, &request.database, &table))?;
        files.push(path);
    }
    let server_id = 1000
        + request
            .database
            .bytes()
            .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % 60_000;
    let config = render::ConfigText {
        url: &request.source_url,
        server_id,
        endpoint_url: request.dynamodb_endpoint_url.as_deref(),
    };
    let path = request.out.join("rowcast.toml");
    write(&path, render::config_file(&config, &request.database))?;
    files.push(path);
    let (_, has_password) = render::config_url(&request.source_url);
    let path = request.out.join("SUGGESTIONS.md");
    write(
        &path,
        render::suggestions(&plan, &request.database, &table, has_password),
    )?;
    files.push(path);
    Ok(Suggested { plan, files })
}

fn create_dir(path: &Path) -> Result<(), SuggestError> {
    std::fs::create_dir_all(path).map_err(|e| SuggestError::Io(path.to_path_buf(), e))
}

fn write(path: &Path, text: String) -> Result<(), SuggestError> {
    std::fs::write(path, text).map_err(|e| SuggestError::Io(path.to_path_buf(), e))
}
