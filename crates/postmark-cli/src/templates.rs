//! `postmark templates pull DIR` / `push DIR`: the server's templates as files, and back, with a diff first.
//!
//! Each template (standard or layout) is a folder named after its alias (`id-<TemplateId>` when it has none):
//!
//! ```text
//! DIR/welcome/meta.json      {"Name", "Alias", "Subject", "TemplateType", "LayoutTemplate", "TemplateId"}
//! DIR/welcome/content.html   the HTML body (absent when the template has none)
//! DIR/welcome/content.txt    the text body (absent when the template has none)
//! ```

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use futures_util::TryStreamExt as _;
use postmark_core::{Error, ResultExt as _};
use postmark_server::ServerClient;
use postmark_server::types::{
    CreateTemplateRequest, EditTemplateRequest, Template, TemplateSummary, TemplateType, TemplateTypeFilter,
};
use serde::{Deserialize, Serialize};

use crate::config;
use crate::output::Output;

pub fn command() -> Command {
    let dir = || Arg::new("dir").value_name("DIR").required(true).value_parser(clap::value_parser!(PathBuf));
    Command::new("templates")
        .about("Keep the server's templates and layouts in files (POSTMARK_SERVER_TOKEN)")
        .subcommand_required(true)
        .subcommand(
            Command::new("pull")
                .about("Write every template and layout of the server into DIR (one folder each)")
                .arg(dir()),
        )
        .subcommand(
            Command::new("push")
                .about("Show how DIR differs from the server, then create and edit templates to match it")
                .arg(dir())
                .arg(Arg::new("yes").long("yes").action(ArgAction::SetTrue).help("Push without asking"))
                .arg(Arg::new("dry-run").long("dry-run").action(ArgAction::SetTrue).help("Only show the differences")),
        )
}

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Meta {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default = "standard")]
    template_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layout_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template_id: Option<i64>,
}

fn standard() -> String {
    "Standard".into()
}

/// One template as files hold it.
#[derive(Debug, Clone, PartialEq)]
struct Local {
    key: String,
    meta: Meta,
    html: Option<String>,
    text: Option<String>,
}

fn usable_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn key_of(alias: Option<&str>, id: i64) -> String {
    alias.filter(|a| usable_key(a)).map(str::to_string).unwrap_or_else(|| format!("id-{id}"))
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn local_of(t: &Template) -> Local {
    Local {
        key: key_of(t.alias.as_deref(), t.template_id),
        meta: Meta {
            name: t.name.clone().unwrap_or_default(),
            alias: t.alias.clone(),
            subject: t.subject.clone(),
            template_type: t.template_type.clone().unwrap_or_else(standard),
            layout_template: t.layout_template.clone(),
            template_id: Some(t.template_id),
        },
        html: t.html_body.clone(),
        text: t.text_body.clone(),
    }
}

async fn fetch_all(client: &ServerClient) -> Result<Vec<Template>, Error> {
    let summaries: Vec<TemplateSummary> =
        client.list_templates().template_type(TemplateTypeFilter::All).stream().try_collect().await?;
    let mut full = Vec::with_capacity(summaries.len());
    for s in summaries {
        let id = s.template_id.to_string();
        full.push(client.get_template().template_id_or_alias(id).send().await.into_postmark()?);
    }
    Ok(full)
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::InvalidInput(format!("{}: {e}", path.display()))
}

fn write_local(dir: &Path, t: &Local) -> Result<(), Error> {
    let folder = dir.join(&t.key);
    std::fs::create_dir_all(&folder).map_err(|e| io(&folder, e))?;
    let meta = serde_json::to_string_pretty(&t.meta).map_err(|e| Error::InvalidInput(e.to_string()))? + "\n";
    std::fs::write(folder.join("meta.json"), meta).map_err(|e| io(&folder, e))?;
    for (file, content) in [("content.html", &t.html), ("content.txt", &t.text)] {
        let path = folder.join(file);
        match non_empty(content) {
            Some(c) => std::fs::write(&path, c).map_err(|e| io(&path, e))?,
            None if path.exists() => std::fs::remove_file(&path).map_err(|e| io(&path, e))?,
            None => {}
        }
    }
    Ok(())
}

fn read_local(dir: &Path) -> Result<Vec<Local>, Error> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let folder = entry.map_err(|e| io(dir, e))?.path();
        let meta_path = folder.join("meta.json");
        if !meta_path.is_file() {
            continue;
        }
        let key = folder.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let text = std::fs::read_to_string(&meta_path).map_err(|e| io(&meta_path, e))?;
        let meta: Meta =
            serde_json::from_str(&text).map_err(|e| Error::InvalidInput(format!("{}: {e}", meta_path.display())))?;
        if !matches!(meta.template_type.as_str(), "Standard" | "Layout") {
            return Err(Error::InvalidInput(format!(
                "{}: TemplateType must be Standard or Layout, not {:?}",
                meta_path.display(),
                meta.template_type
            )));
        }
        let body = |file: &str| -> Result<Option<String>, Error> {
            let path = folder.join(file);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(&path, e)),
            }
        };
        out.push(Local { key, meta, html: body("content.html")?, text: body("content.txt")? });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// What `push` would do with one local template.
#[derive(Debug)]
enum Change {
    Create(Local),
    Edit { local: Local, id: i64, diff: String },
}

/// The fields that differ (`None` and `""` are the same), as a readable diff.
fn diff(server: &Local, local: &Local) -> String {
    let mut out = String::new();
    let line = |out: &mut String, field: &str, a: Option<&str>, b: Option<&str>| {
        if a != b {
            out.push_str(&format!("    {field}: {:?} -> {:?}\n", a.unwrap_or(""), b.unwrap_or("")));
        }
    };
    line(&mut out, "Name", Some(server.meta.name.as_str()), Some(local.meta.name.as_str()));
    line(&mut out, "Subject", non_empty(&server.meta.subject), non_empty(&local.meta.subject));
    line(&mut out, "LayoutTemplate", non_empty(&server.meta.layout_template), non_empty(&local.meta.layout_template));
    for (file, a, b) in [("content.html", &server.html, &local.html), ("content.txt", &server.text, &local.text)] {
        let (a, b) = (non_empty(a).unwrap_or(""), non_empty(b).unwrap_or(""));
        if a != b {
            let d = similar::TextDiff::from_lines(a, b)
                .unified_diff()
                .context_radius(2)
                .header(&format!("server/{}/{file}", local.key), &format!("local/{}/{file}", local.key))
                .to_string();
            out.extend(d.lines().map(|l| format!("    {l}\n")));
        }
    }
    out
}

fn plan(locals: Vec<Local>, remote: &[Template]) -> Result<(Vec<Change>, usize), Error> {
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for local in locals {
        let found = remote.iter().find(|t| match (&local.meta.alias, local.meta.template_id) {
            (Some(alias), _) => t.alias.as_deref() == Some(alias.as_str()),
            (None, Some(id)) => t.template_id == id,
            (None, None) => false,
        });
        let Some(server) = found else {
            changes.push(Change::Create(local));
            continue;
        };
        let server = local_of(server);
        if server.meta.template_type != local.meta.template_type {
            return Err(Error::InvalidInput(format!(
                "{}: the server's template is a {}, the local one a {}; Postmark cannot change a template's type",
                local.key, server.meta.template_type, local.meta.template_type
            )));
        }
        let d = diff(&server, &local);
        if d.is_empty() {
            unchanged += 1;
        } else {
            changes.push(Change::Edit { id: server.meta.template_id.unwrap_or_default(), local, diff: d });
        }
    }
    // Layouts first: a new standard template may name a new layout.
    changes.sort_by_key(|c| {
        let l = match c {
            Change::Create(l) | Change::Edit { local: l, .. } => l,
        };
        l.meta.template_type != "Layout"
    });
    Ok((changes, unchanged))
}

fn confirm(count: usize) -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::InvalidInput("not pushing without --yes (stdin is not a terminal to ask on)".into()));
    }
    print!("Push {count} change(s) to the server? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| Error::InvalidInput(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn template_type(name: &str) -> TemplateType {
    if name == "Layout" { TemplateType::Layout } else { TemplateType::Standard }
}

fn opt(s: &Option<String>) -> Option<String> {
    Some(s.clone().unwrap_or_default())
}

pub async fn run(m: &ArgMatches, _output: Output, retries: u32) -> anyhow::Result<()> {
    let token = config::require_token(config::SERVER_TOKEN_ENV)?;
    let client = config::builder::<postmark_server::ServerApi>(token, retries).build()?;
    match m.subcommand() {
        Some(("pull", sub)) => {
            let dir = sub.get_one::<PathBuf>("dir").expect("required");
            let templates = fetch_all(&client).await?;
            for t in &templates {
                let local = local_of(t);
                write_local(dir, &local)?;
                println!("pulled {:<24} {:<8} {}", local.key, local.meta.template_type, local.meta.name);
            }
            println!("{} template(s) in {}", templates.len(), dir.display());
            Ok(())
        }
        Some(("push", sub)) => {
            let dir = sub.get_one::<PathBuf>("dir").expect("required");
            let locals = read_local(dir)?;
            if locals.is_empty() {
                return Err(
                    Error::InvalidInput(format!("no template folders (with meta.json) in {}", dir.display())).into()
                );
            }
            let remote = fetch_all(&client).await?;
            let (changes, unchanged) = plan(locals, &remote)?;
            for c in &changes {
                match c {
                    Change::Create(l) => println!("+ {} ({}, {}): new", l.key, l.meta.name, l.meta.template_type),
                    Change::Edit { local, diff, .. } => {
                        println!("~ {} ({}, {}):", local.key, local.meta.name, local.meta.template_type);
                        print!("{diff}");
                    }
                }
            }
            let creates = changes.iter().filter(|c| matches!(c, Change::Create(_))).count();
            println!("{creates} to create, {} to edit, {unchanged} unchanged", changes.len() - creates);
            if changes.is_empty() || sub.get_flag("dry-run") {
                return Ok(());
            }
            if !sub.get_flag("yes") && !confirm(changes.len())? {
                println!("nothing pushed");
                return Ok(());
            }
            for c in changes {
                match c {
                    Change::Create(l) => {
                        let body = CreateTemplateRequest {
                            name: l.meta.name.clone(),
                            alias: l.meta.alias.clone(),
                            subject: l.meta.subject.clone(),
                            html_body: l.html.clone(),
                            text_body: l.text.clone(),
                            template_type: Some(template_type(&l.meta.template_type)),
                            layout_template: l.meta.layout_template.clone().filter(|s| !s.is_empty()),
                        };
                        let made = client.create_template().body(body).send().await.into_postmark()?;
                        println!("created {} (TemplateId {})", l.key, made.template_id);
                    }
                    Change::Edit { local: l, id, .. } => {
                        let body = EditTemplateRequest {
                            name: Some(l.meta.name.clone()),
                            alias: None,
                            subject: opt(&l.meta.subject),
                            html_body: opt(&l.html),
                            text_body: opt(&l.text),
                            layout_template: opt(&l.meta.layout_template),
                        };
                        client
                            .edit_template()
                            .template_id_or_alias(id.to_string())
                            .body(body)
                            .send()
                            .await
                            .into_postmark()?;
                        println!("edited {} (TemplateId {id})", l.key);
                    }
                }
            }
            Ok(())
        }
        _ => unreachable!("clap requires a subcommand"),
    }
}
