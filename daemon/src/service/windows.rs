//! Windows: a service registered with the Service Control Manager through `sc.exe`, started
//! automatically, restarted after failures, stopped with the drain's time (the daemon drains on the
//! service stop control). The calls are data, tested as text here.

use super::{DESCRIPTION, Definition, NAME, Step};

/// One argument as `CommandLineToArgvW` reads it back: quoted when it holds a space, tab or quote;
/// backslashes doubled only where they precede a quote.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.chars().any(|c| c == ' ' || c == '\t' || c == '"') {
        return arg.to_string();
    }
    let mut out = String::from('"');
    let mut slashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => slashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(slashes * 2 + 1));
                out.push('"');
                slashes = 0;
            }
            c => {
                out.push_str(&"\\".repeat(slashes));
                out.push(c);
                slashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(slashes * 2));
    out.push('"');
    out
}

/// The SCM's `binPath=`: the command line, each part quoted as Windows expects.
pub fn bin_path(d: &Definition) -> String {
    d.argv("serve").iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

pub fn install(d: &Definition) -> Vec<Step> {
    let sc = |args: &[&str]| Step::Run {
        argv: std::iter::once("sc.exe").chain(args.iter().copied()).map(String::from).collect(),
    };
    let bin = bin_path(d);
    vec![
        sc(&["create", NAME, "binPath=", &bin, "start=", "auto", "DisplayName=", "ephemerd"]),
        sc(&["description", NAME, DESCRIPTION]),
        // Restart after 5 s, then 30 s; reset the failure count after a day.
        sc(&["failure", NAME, "reset=", "86400", "actions=", "restart/5000/restart/30000//"]),
        sc(&["config", NAME, "start=", "delayed-auto"]),
    ]
}

pub fn uninstall() -> Vec<Step> {
    vec![
        Step::Run { argv: vec!["sc.exe".into(), "stop".into(), NAME.into()] },
        Step::Run { argv: vec!["sc.exe".into(), "delete".into(), NAME.into()] },
    ]
}

pub fn start() -> Vec<Step> {
    vec![Step::Run { argv: vec!["sc.exe".into(), "start".into(), NAME.into()] }]
}

pub fn stop() -> Vec<Step> {
    vec![Step::Run { argv: vec!["sc.exe".into(), "stop".into(), NAME.into()] }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_quoting() {
        assert_eq!(quote(r"C:\x\ephemerd.exe"), r"C:\x\ephemerd.exe");
        assert_eq!(quote(r"C:\Program Files\e"), r#""C:\Program Files\e""#);
        assert_eq!(quote(r"C:\dir with space\"), r#""C:\dir with space\\""#);
        assert_eq!(quote(r#"a"b"#), r#""a\"b""#);
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn the_sc_calls() {
        let d = Definition {
            exe: r"C:\Program Files\ephemerd\ephemerd.exe".into(),
            data_dir: r"C:\ProgramData\ephemerd".into(),
            config: None,
            stop_timeout_secs: 3630,
        };
        let text: Vec<String> = install(&d)
            .into_iter()
            .map(|s| match s {
                Step::Run { argv } => argv.join(" | "),
                other => format!("{other:?}"),
            })
            .collect();
        insta::assert_snapshot!(text.join("\n"));
    }
}
