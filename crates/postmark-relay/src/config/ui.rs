//! The preview UI's settings: `--ui` / `RELAY_UI` / `ui`, `ui_allow`, `ui_actions` and the
//! access token (environment or file, never a flag).

use super::ConfigError;
use super::file::FileConfig;
use crate::cli::Args;
use crate::secrets::{self, Secret};
use crate::ui::{DEFAULT_ADDR, UiSettings};

/// The UI's settings, or `None` when it is off (`off`, or not set outside dry-run).
pub(super) fn resolve(
    args: &Args,
    file: &FileConfig,
    env: &dyn Fn(&str) -> Option<String>,
    dry_run: bool,
) -> Result<Option<UiSettings>, ConfigError> {
    let set = args.ui.clone().or_else(|| file.ui.clone()).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (addr, by_default) = match set {
        Some(s) if s.eq_ignore_ascii_case("off") => return Ok(None),
        Some(s) => (s, false),
        None if dry_run => (DEFAULT_ADDR.to_owned(), true),
        None => return Ok(None),
    };
    let allow = match env("RELAY_UI_ALLOW").filter(|s| !s.trim().is_empty()) {
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => file.ui_allow.clone().unwrap_or_default(),
    };
    let allow = crate::ui::parse_allow(&allow).map_err(|e| ConfigError::invalid("ui_allow", e.to_string()))?;
    let actions = match env("RELAY_UI_ACTIONS").filter(|s| !s.is_empty()) {
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(ConfigError::invalid("RELAY_UI_ACTIONS", "expected true or false")),
        },
        None => file.ui_actions.unwrap_or(false),
    };
    let token = token(env, file)?;
    let settings = UiSettings { addr, by_default, allow, actions, token };
    crate::ui::check_bind(&settings).map_err(|e| ConfigError::invalid("--ui", e.to_string()))?;
    Ok(Some(settings))
}

/// `RELAY_UI_TOKEN` or `RELAY_UI_TOKEN_FILE`, else `ui_token` or `ui_token_file`.
fn token(env: &dyn Fn(&str) -> Option<String>, file: &FileConfig) -> Result<Option<Secret>, ConfigError> {
    let value = env("RELAY_UI_TOKEN").filter(|v| !v.is_empty());
    let path = env("RELAY_UI_TOKEN_FILE").filter(|v| !v.is_empty());
    match (value, path) {
        (Some(_), Some(_)) => {
            Err(ConfigError::Inconsistent("set RELAY_UI_TOKEN or RELAY_UI_TOKEN_FILE, not both".into()))
        }
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(p)) => Ok(Some(secrets::read_secret_file(std::path::Path::new(&p), "RELAY_UI_TOKEN_FILE")?)),
        (None, None) => Ok(secrets::from_file_keys(
            file.ui_token.clone(),
            file.ui_token_file.as_deref(),
            "ui_token",
            &mut Vec::new(),
        )?),
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::Cli;
    use crate::config::Config;
    use crate::testing::env_of;
    use clap::Parser;

    fn resolve(flags: &[&str], env: &[(&str, &str)]) -> Result<Option<crate::ui::UiSettings>, String> {
        let mut argv = vec!["postmark-relay"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).unwrap();
        Config::resolve(&cli.args, &env_of(env)).map(|c| c.ui).map_err(|e| e.to_string())
    }

    #[test]
    fn on_by_default_in_dry_run_only_and_off_turns_it_off() {
        let ui = resolve(&[], &[]).unwrap().unwrap();
        assert_eq!((ui.addr.as_str(), ui.by_default), ("127.0.0.1:8025", true));
        assert!(resolve(&["--ui", "off"], &[]).unwrap().is_none());
        assert!(resolve(&[], &[("POSTMARK_SERVER_TOKEN", "t")]).unwrap().is_none());
        let ui = resolve(&["--ui", "127.0.0.1:9000"], &[("POSTMARK_SERVER_TOKEN", "t")]).unwrap().unwrap();
        assert_eq!((ui.addr.as_str(), ui.by_default), ("127.0.0.1:9000", false));
    }

    #[test]
    fn a_non_loopback_address_needs_ui_allow_and_actions_are_off_by_default() {
        let e = resolve(&["--ui", "0.0.0.0:8025"], &[]).unwrap_err();
        assert!(e.contains("not a loopback address") && e.contains("ui_allow"), "{e}");
        let ui = resolve(&["--ui", "0.0.0.0:8025"], &[("RELAY_UI_ALLOW", "10.0.0.0/8")]).unwrap().unwrap();
        assert_eq!(ui.allow.len(), 1);
        assert!(!ui.actions && ui.token.is_none() && !ui.actions_enabled());
        let ui = resolve(&[], &[("RELAY_UI_ACTIONS", "true"), ("RELAY_UI_TOKEN", "s3cr3t")]).unwrap().unwrap();
        assert!(ui.actions_enabled());
        assert!(resolve(&[], &[("RELAY_UI_ACTIONS", "maybe")]).is_err());
    }

    #[test]
    fn the_token_comes_from_the_environment_or_the_file_never_a_flag() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("ui-token");
        std::fs::write(&token, "from-a-file\n").unwrap();
        let conf = dir.path().join("relay.toml");
        std::fs::write(&conf, format!("ui_actions = true\nui_token_file = {:?}\n", token.to_str().unwrap())).unwrap();
        let ui = resolve(&["--config", conf.to_str().unwrap()], &[]).unwrap().unwrap();
        assert_eq!(ui.token.as_ref().map(|t| t.expose().to_owned()).as_deref(), Some("from-a-file"));
        assert!(ui.actions_enabled());
        assert!(Cli::try_parse_from(["postmark-relay", "--ui-token", "x"]).is_err(), "no flag takes the token");
    }
}
