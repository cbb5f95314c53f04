use super::*;

fn policy(f: impl FnOnce(&mut PolicySettings)) -> Result<Policy, PolicyError> {
    let mut s = PolicySettings::default();
    f(&mut s);
    Policy::new(s)
}

fn aliases(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
}

#[test]
fn a_bare_name_without_alias_or_domain_is_refused_with_how_to_fix_it() {
    let p = Policy::default();
    let r = p.recipient("root").unwrap_err();
    assert_eq!((r.code, r.enhanced, r.exit), (550, "5.1.1", exit::NOUSER));
    assert!(r.text.contains("[aliases] root = ") && r.text.contains("local_domain"), "{}", r.text);
    assert_eq!(p.recipient("user@example.com").unwrap(), ["user@example.com"]);
}

fn on_host(local_domain: Option<&str>) -> Policy {
    policy(|s| {
        s.local_domain = local_domain.map(str::to_owned);
        s.host =
            host::HostNames { mailname: None, hostname: Some("web1".into()), fqdn: Some("web1.example.org".into()) };
        s.aliases = aliases(&[("root", &["ops@example.com"])]);
    })
    .unwrap()
}

#[test]
fn addresses_at_this_host_are_local_and_never_sent_as_they_are() {
    for p in [on_host(None), on_host(Some("example.org"))] {
        for local in ["root", "root@localhost", "root@web1", "ROOT@Web1.Example.Org", "root@localhost.localdomain"] {
            assert_eq!(p.recipient(local).unwrap(), ["ops@example.com"], "{local}");
        }
        assert_eq!(p.recipient("root@example.net").unwrap(), ["root@example.net"], "another domain");
    }
    // Without an alias: to local_domain when it is set, refused (naming the fix) when not.
    let p = on_host(Some("example.org"));
    assert_eq!(p.recipient("www-data@web1").unwrap(), ["www-data@example.org"]);
    assert_eq!(p.recipient("www-data@example.org").unwrap(), ["www-data@example.org"]);
    assert_eq!(p.recipient("root@example.org").unwrap(), ["ops@example.com"]);
    let p = on_host(None);
    for local in ["www-data", "www-data@localhost", "www-data@web1.example.org"] {
        let r = p.recipient(local).unwrap_err();
        assert_eq!((r.code, r.exit), (550, exit::NOUSER), "{local}");
        assert!(r.text.contains("[aliases] www-data = ") && r.text.contains("local_domain"), "{}", r.text);
    }
    // A bare sender takes local_domain, else the host's mail domain.
    assert_eq!(on_host(None).qualify("cron"), "cron@web1.example.org");
    assert_eq!(on_host(Some("example.org")).qualify("cron"), "cron@example.org");
    assert_eq!(on_host(Some("example.org")).qualify("cron@web1"), "cron@example.org", "mutt's sender");
    assert_eq!(on_host(Some("example.org")).qualify("cron@localhost"), "cron@example.org");
    assert_eq!(on_host(None).qualify("cron@localhost"), "cron@web1.example.org");
    assert_eq!(on_host(None).qualify("cron@example.net"), "cron@example.net");
    assert_eq!(Policy::default().qualify("cron"), "cron", "no domain to add");
}

#[test]
fn aliases_expand_lists_nested_and_qualified_names() {
    let p = policy(|s| {
        s.local_domain = Some("Host.Example".into());
        s.aliases = aliases(&[
            ("root", &["ops@example.com"]),
            ("postmaster", &["root"]),
            ("www-data", &["dev1@example.com", "dev2@example.com", "root"]),
            ("backup@nas.example", &["storage@example.com"]),
        ]);
    })
    .unwrap();
    assert_eq!(p.recipient("root").unwrap(), ["ops@example.com"]);
    assert_eq!(p.recipient("ROOT@host.example").unwrap(), ["ops@example.com"]);
    assert_eq!(p.recipient("postmaster").unwrap(), ["ops@example.com"]);
    assert_eq!(p.recipient("www-data").unwrap(), ["dev1@example.com", "dev2@example.com", "ops@example.com"]);
    assert_eq!(p.recipient("backup@nas.example").unwrap(), ["storage@example.com"]);
    assert_eq!(p.recipient("nobody").unwrap(), ["nobody@host.example"], "qualified with local_domain");
    assert_eq!(p.recipient("root@other.example").unwrap(), ["root@other.example"], "another domain is not local");
    assert_eq!(p.qualify("cron"), "cron@host.example");
    assert_eq!(p.qualify(""), "", "the null sender stays null");
}

#[test]
fn bad_alias_and_policy_settings_are_refused_at_start() {
    let loop_ = policy(|s| s.aliases = aliases(&[("a", &["b"]), ("b", &["a"])])).unwrap_err();
    assert!(loop_.setting.starts_with("aliases.") && loop_.problem.contains("loop"), "{loop_}");
    let dangling = policy(|s| s.aliases = aliases(&[("root", &["ops"])])).unwrap_err();
    assert!(dangling.problem.contains("no domain"), "{dangling}");
    let bad = policy(|s| s.aliases = aliases(&[("root", &["not an address@x"])])).unwrap_err();
    assert_eq!(bad.setting, "aliases.root");
    assert!(policy(|s| s.aliases = aliases(&[("root", &[])])).is_err());
    assert!(policy(|s| s.local_domain = Some("not a domain".into())).is_err());
    assert!(policy(|s| s.allowed_senders = Some(vec!["bad address@".into()])).is_err());
    assert!(policy(|s| s.rewrite_from = Some("noreply".into())).is_err());
    let route = |senders: &[&str]| RouteSettings {
        name: "r".into(),
        senders: senders.iter().map(|s| s.to_string()).collect(),
        ..RouteSettings::default()
    };
    assert!(policy(|s| s.routes = vec![route(&[])]).is_err(), "a route matching nothing");
    assert!(policy(|s| s.routes = vec![route(&["a.example"]); 2]).is_err(), "two routes with one name");
    assert!(policy(|s| s.routes = vec![route(&["not a domain"])]).is_err());
}

#[test]
fn allowed_senders_check_the_envelope_and_the_header_from() {
    let p = policy(|s| s.allowed_senders = Some(vec!["app@example.com".into(), "@billing.example".into()])).unwrap();
    assert_eq!(p.sender("App@Example.com").unwrap(), "App@Example.com");
    assert_eq!(p.sender("x@billing.example").unwrap(), "x@billing.example");
    assert_eq!(p.sender("").unwrap(), "", "bounces (null sender) pass; their From is checked");
    let r = p.sender("www-data@host.example").unwrap_err();
    assert_eq!((r.code, r.enhanced, r.exit), (550, "5.7.1", exit::NOPERM));

    let ok = b"From: App <app@example.com>\r\nTo: u@example.net\r\n\r\nhi\r\n";
    assert_eq!(p.message(ok, "app@example.com", None, 0).unwrap(), Decision::default());
    let spoofed = b"From: ceo@example.org\r\nTo: u@example.net\r\n\r\nhi\r\n";
    let r = p.message(spoofed, "app@example.com", None, 0).unwrap_err();
    assert!(r.text.contains("From ceo@example.org"), "{}", r.text);
    let none = b"To: u@example.net\r\n\r\nhi\r\n";
    assert_eq!(p.message(none, "app@example.com", None, 0).unwrap_err().code, 550);
}

#[test]
fn rewrite_from_keeps_the_original_in_reply_to_and_x_original_from() {
    let p = policy(|s| s.rewrite_from = Some("noreply@example.com".into())).unwrap();
    assert_eq!(p.sender("www-data@host").unwrap(), "noreply@example.com");
    let raw = b"From: Cron Daemon <root@host.example>\r\nTo: u@example.net\r\nSubject: x\r\n\r\nbody\r\n";
    let d = p.message(raw, "noreply@example.com", None, 0).unwrap();
    let out = String::from_utf8(d.raw.unwrap()).unwrap();
    assert_eq!(
        out,
        "From: Cron Daemon <noreply@example.com>\r\nReply-To: Cron Daemon <root@host.example>\r\n\
         X-Original-From: Cron Daemon <root@host.example>\r\nTo: u@example.net\r\nSubject: x\r\n\r\nbody\r\n"
    );
    // An existing Reply-To stays; a message without From gets one.
    let raw = b"From: a@host\r\nReply-To: team@example.com\r\n\r\nbody\r\n";
    let out = String::from_utf8(p.message(raw, "", None, 0).unwrap().raw.unwrap()).unwrap();
    assert!(
        out.starts_with("From: noreply@example.com\r\nX-Original-From: a@host\r\nReply-To: team@example.com\r\n"),
        "{out}"
    );
    let out = String::from_utf8(p.message(b"Subject: none\r\n\r\nb\r\n", "", None, 0).unwrap().raw.unwrap()).unwrap();
    assert_eq!(out, "From: noreply@example.com\r\nSubject: none\r\n\r\nb\r\n");
    // A non-ASCII display name is encoded.
    let out = rewrite_from("From: Jürgen <j@host>\r\n\r\nb\r\n".as_bytes(), "noreply@example.com");
    assert!(String::from_utf8(out).unwrap().starts_with("From: =?UTF-8?B?SsO8cmdlbg==?= <noreply@example.com>\r\n"));
}

#[test]
fn the_first_matching_route_wins_by_user_or_sender() {
    let p = policy(|s| {
        s.routes = vec![
            RouteSettings {
                name: "billing".into(),
                senders: vec!["billing.example".into()],
                users: vec![],
                message_stream: Some("invoices".into()),
            },
            RouteSettings { name: "crm".into(), senders: vec![], users: vec!["crm-app".into()], message_stream: None },
        ]
    })
    .unwrap();
    let raw = b"From: x@billing.example\r\nTo: u@example.net\r\n\r\nhi\r\n";
    let d = p.message(raw, "bounce@other.example", None, 0).unwrap();
    assert_eq!((d.route.as_deref(), d.stream.as_deref()), (Some("billing"), Some("invoices")));
    let raw = b"From: x@example.com\r\nTo: u@example.net\r\n\r\nhi\r\n";
    assert_eq!(p.message(raw, "x@example.com", Some("crm-app"), 0).unwrap().route.as_deref(), Some("crm"));
    assert_eq!(p.message(raw, "x@example.com", Some("other"), 0).unwrap().route, None, "the default credentials");
}

#[test]
fn an_unverified_from_is_refused_before_250() {
    let p = Policy::default();
    p.verified().learn("www-data@host.example", 400, "not a Sender Signature", 0);
    let raw = b"From: www-data@host.example\r\nTo: u@example.net\r\n\r\nhi\r\n";
    let r = p.message(raw, "www-data@host.example", None, 10).unwrap_err();
    assert_eq!((r.code, r.enhanced), (550, "5.7.1"));
    assert!(r.text.contains("ErrorCode 400"), "{}", r.text);
}
