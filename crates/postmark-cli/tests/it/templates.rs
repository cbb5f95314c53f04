//! `templates pull` and `templates push` against the fake's template store.

use serde_json::{Value, json};

use super::{fake, postmark, server_env};

fn seed() -> Vec<Value> {
    vec![
        json!({"TemplateId": 1001, "Name": "Base layout", "Alias": "base", "TemplateType": "Layout",
               "HtmlBody": "<html><body>{{{@content}}}</body></html>", "TextBody": "{{{@content}}}"}),
        json!({"TemplateId": 1002, "Name": "Welcome", "Alias": "welcome", "Subject": "Welcome, {{name}}",
               "HtmlBody": "<p>Hello {{name}}</p>\n<p>Thanks for joining.</p>\n", "TextBody": "Hello {{name}}",
               "LayoutTemplate": "base"}),
        json!({"TemplateId": 1003, "Name": "Receipt", "Subject": "Your receipt", "TextBody": "Total: {{total}}"}),
    ]
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn pull_writes_one_folder_per_template_and_layout() {
    let fake = fake().await;
    fake.store_templates(seed());
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().to_str().expect("utf-8");
    let run = postmark(&fake, &server_env(), &["templates", "pull", out]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("3 template(s)"), "{}", run.stdout);
    let meta: Value = serde_json::from_str(&read(&dir.path().join("welcome/meta.json"))).expect("json");
    assert_eq!(
        meta,
        json!({"Name": "Welcome", "Alias": "welcome", "Subject": "Welcome, {{name}}", "TemplateType": "Standard",
               "LayoutTemplate": "base", "TemplateId": 1002})
    );
    assert_eq!(read(&dir.path().join("welcome/content.html")), "<p>Hello {{name}}</p>\n<p>Thanks for joining.</p>\n");
    assert_eq!(read(&dir.path().join("base/content.txt")), "{{{@content}}}");
    assert!(dir.path().join("id-1003/content.txt").is_file(), "no alias: named after the ID");
    assert!(!dir.path().join("id-1003/content.html").exists(), "no HTML body, no file");
}

#[tokio::test]
async fn push_shows_a_diff_and_changes_nothing_until_confirmed() {
    let fake = fake().await;
    fake.store_templates(seed());
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().to_str().expect("utf-8");
    assert_eq!(postmark(&fake, &server_env(), &["templates", "pull", out]).await.code, 0);

    // Nothing changed locally: nothing to push.
    let run = postmark(&fake, &server_env(), &["templates", "push", out]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("0 to create, 0 to edit, 3 unchanged"), "{}", run.stdout);

    // One edit, one new template.
    std::fs::write(dir.path().join("welcome/content.html"), "<p>Hi {{name}}</p>\n<p>Thanks for joining.</p>\n")
        .expect("write");
    std::fs::create_dir(dir.path().join("goodbye")).expect("mkdir");
    std::fs::write(
        dir.path().join("goodbye/meta.json"),
        r#"{"Name": "Goodbye", "Alias": "goodbye", "Subject": "Bye"}"#,
    )
    .expect("write");
    std::fs::write(dir.path().join("goodbye/content.txt"), "Bye {{name}}").expect("write");
    let before = fake.templates();

    let run = postmark(&fake, &server_env(), &["templates", "push", out, "--dry-run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("+ goodbye (Goodbye, Standard): new"), "{}", run.stdout);
    assert!(run.stdout.contains("~ welcome (Welcome, Standard):"), "{}", run.stdout);
    assert!(
        run.stdout.contains("-<p>Hello {{name}}</p>") && run.stdout.contains("+<p>Hi {{name}}</p>"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1 to create, 1 to edit, 2 unchanged"), "{}", run.stdout);
    assert_eq!(fake.templates(), before, "a dry run changes nothing");

    // Not a terminal and no --yes: refused, nothing changed.
    let run = postmark(&fake, &server_env(), &["templates", "push", out]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert_eq!(fake.templates(), before);

    let run = postmark(&fake, &server_env(), &["templates", "push", out, "--yes"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let after = fake.templates();
    let welcome = after.iter().find(|t| t["Alias"] == "welcome").expect("welcome");
    assert_eq!(welcome["HtmlBody"], "<p>Hi {{name}}</p>\n<p>Thanks for joining.</p>\n");
    assert_eq!(welcome["LayoutTemplate"], "base", "unchanged fields kept");
    let goodbye = after.iter().find(|t| t["Alias"] == "goodbye").expect("created");
    assert_eq!((goodbye["Subject"].as_str(), goodbye["TextBody"].as_str()), (Some("Bye"), Some("Bye {{name}}")));

    let run = postmark(&fake, &server_env(), &["templates", "push", out]).await;
    assert!(run.stdout.contains("0 to create, 0 to edit, 4 unchanged"), "in sync afterwards: {}", run.stdout);
}

#[tokio::test]
async fn push_refuses_bad_folders_and_type_changes() {
    let fake = fake().await;
    fake.store_templates(seed());
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().to_str().expect("utf-8");
    let run = postmark(&fake, &server_env(), &["templates", "push", out]).await;
    assert_eq!(run.code, 2, "an empty folder: {run:?}");

    std::fs::create_dir(dir.path().join("welcome")).expect("mkdir");
    std::fs::write(
        dir.path().join("welcome/meta.json"),
        r#"{"Name": "W", "Alias": "welcome", "TemplateType": "Layout"}"#,
    )
    .expect("write");
    let run = postmark(&fake, &server_env(), &["templates", "push", out, "--yes"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cannot change a template's type"), "{}", run.stderr);

    std::fs::write(dir.path().join("welcome/meta.json"), r#"{"Alias": "welcome"}"#).expect("write");
    let run = postmark(&fake, &server_env(), &["templates", "push", out, "--yes"]).await;
    assert_eq!(run.code, 2, "meta.json without Name: {run:?}");
    std::fs::write(dir.path().join("welcome/meta.json"), r#"{"Name": "W", "TemplateType": "Fancy"}"#).expect("write");
    let run = postmark(&fake, &server_env(), &["templates", "push", out, "--yes"]).await;
    assert_eq!(run.code, 2, "unknown type: {run:?}");
    assert_eq!(fake.templates(), {
        let f2 = super::fake().await;
        f2.store_templates(seed());
        f2.templates()
    });
}
