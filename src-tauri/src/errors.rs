//! Failures as the UI sees them: a stable `code` it can branch on and a sentence for a person.

use ephemerd_proto::ErrorReason;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiError {
    pub code: &'static str,
    pub message: String,
}

impl UiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// Input the app itself refuses before asking the daemon.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid_field", message)
    }

    /// A failure inside the app (a task that died, a window that could not open).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new("internal", format!("Something went wrong in the app: {message}."))
    }
}

/// The daemon could not be reached at all.
pub fn unavailable(e: &ephemerd_proto::Unavailable) -> UiError {
    if e.cause.contains("ermission denied") {
        return UiError::new(
            "daemon_forbidden",
            "ephemerd is running, but this account may not talk to it. Add yourself to the group set in its \
             config (control.group), then log in again.",
        );
    }
    UiError::new("daemon_unavailable", "ephemerd is not running.")
}

/// A call the daemon answered with an error.
pub fn from_status(s: &tonic::Status) -> UiError {
    use tonic::Code;
    let said = s.message().to_string();
    match ephemerd_proto::reason_of(s) {
        Some(ErrorReason::JobNotFound) => UiError::new("job_not_found", "That job is no longer in the history."),
        Some(ErrorReason::JobNotRunning) => UiError::new("job_not_running", "That job is not running any more."),
        Some(ErrorReason::JobIdAmbiguous) => UiError::new("job_ambiguous", said),
        Some(ErrorReason::InvalidField) => {
            UiError::new("invalid_field", format!("Please check what you entered: {said}."))
        }
        Some(ErrorReason::DaemonStopping) => UiError::new("daemon_stopping", "ephemerd is shutting down."),
        Some(ErrorReason::ProviderNotFound) => UiError::new(
            "provider_not_found",
            "That forge is not in ephemerd's settings (yet). Save the settings first.",
        ),
        Some(ErrorReason::KeyringUnavailable) => UiError::new(
            "keyring_unavailable",
            "The system keychain is not available, so the token cannot be stored safely. Unlock or set up your \
             keychain (on Linux: a Secret Service such as GNOME Keyring) and try again.",
        ),
        Some(ErrorReason::InvalidConfig) => {
            UiError::new("invalid_config", format!("The settings file has a mistake: {said}."))
        }
        Some(ErrorReason::NotImplemented) => {
            UiError::new("not_implemented", format!("This ephemerd cannot do that yet: {said}."))
        }
        Some(ErrorReason::NotAllowed) => UiError::new("not_allowed", format!("ephemerd does not allow this: {said}.")),
        Some(ErrorReason::LogUnavailable) => {
            UiError::new("log_unavailable", format!("The job's log cannot be shown: {said}."))
        }
        Some(ErrorReason::Store) | Some(ErrorReason::Unspecified) | None => match s.code() {
            Code::Unavailable | Code::Cancelled => UiError::new("daemon_unavailable", "ephemerd stopped answering."),
            Code::DeadlineExceeded => UiError::new("timeout", "ephemerd took too long to answer."),
            _ => UiError::new("internal", format!("Something went wrong inside ephemerd: {said}.")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn reasons_become_codes_and_plain_words() {
        let table = [
            (ErrorReason::JobNotFound, "job_not_found"),
            (ErrorReason::KeyringUnavailable, "keyring_unavailable"),
            (ErrorReason::InvalidConfig, "invalid_config"),
            (ErrorReason::InvalidField, "invalid_field"),
            (ErrorReason::ProviderNotFound, "provider_not_found"),
        ];
        for (reason, code) in table {
            let s = ephemerd_proto::error(Code::FailedPrecondition, reason, "scheduler.max_concurrent: bad");
            assert_eq!(from_status(&s).code, code, "{reason:?}");
        }
        let e =
            from_status(&ephemerd_proto::error(Code::InvalidArgument, ErrorReason::InvalidField, "id: not a job id"));
        assert_eq!(e.message, "Please check what you entered: id: not a job id.");
        assert_eq!(from_status(&tonic::Status::unavailable("broken pipe")).code, "daemon_unavailable");
        assert_eq!(from_status(&tonic::Status::internal("x")).code, "internal");
    }

    #[test]
    fn an_unreachable_daemon_says_why() {
        let denied =
            ephemerd_proto::Unavailable { socket: "/s".into(), cause: "Permission denied (os error 13)".into() };
        assert_eq!(unavailable(&denied).code, "daemon_forbidden");
        let gone = ephemerd_proto::Unavailable { socket: "/s".into(), cause: "No such file or directory".into() };
        assert_eq!(unavailable(&gone).code, "daemon_unavailable");
    }
}
