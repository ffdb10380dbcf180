//! Every failure of a control RPC, and its one mapping to a gRPC status with a stable reason.

use ephemerd_proto::ErrorReason;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no job {0}")]
    JobNotFound(String),
    #[error("job id {id} is ambiguous: it matches {matches}; give the full id")]
    Ambiguous { id: String, matches: String },
    #[error("job {id} is {phase}, not running")]
    NotRunning { id: String, phase: String },
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },
    #[error("the daemon is stopping")]
    Stopping,
    #[error("no provider {0}")]
    ProviderNotFound(String),
    #[error("{0} is not implemented yet in this version of ephemerd")]
    NotImplemented(&'static str),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("log of job {id}: {message}")]
    Log { id: String, message: String },
    #[error("the config was not reloaded: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Credential(#[from] crate::secrets::CredentialError),
    #[error("{0}")]
    NotAllowed(String),
}

impl From<ControlError> for tonic::Status {
    fn from(e: ControlError) -> Self {
        let (code, reason) = match &e {
            ControlError::JobNotFound(_) => (Code::NotFound, ErrorReason::JobNotFound),
            ControlError::Ambiguous { .. } => (Code::InvalidArgument, ErrorReason::JobIdAmbiguous),
            ControlError::NotRunning { .. } => (Code::FailedPrecondition, ErrorReason::JobNotRunning),
            ControlError::InvalidField { .. } => (Code::InvalidArgument, ErrorReason::InvalidField),
            ControlError::Stopping => (Code::Unavailable, ErrorReason::DaemonStopping),
            ControlError::ProviderNotFound(_) => (Code::NotFound, ErrorReason::ProviderNotFound),
            ControlError::NotImplemented(_) => (Code::Unimplemented, ErrorReason::NotImplemented),
            ControlError::Store(_) => (Code::Internal, ErrorReason::Store),
            ControlError::Log { .. } => (Code::Internal, ErrorReason::LogUnavailable),
            ControlError::InvalidConfig(_) => (Code::FailedPrecondition, ErrorReason::InvalidConfig),
            ControlError::Credential(crate::secrets::CredentialError::Unavailable(_)) => {
                (Code::FailedPrecondition, ErrorReason::KeyringUnavailable)
            }
            ControlError::Credential(_) => (Code::InvalidArgument, ErrorReason::InvalidField),
            ControlError::NotAllowed(_) => (Code::PermissionDenied, ErrorReason::NotAllowed),
        };
        ephemerd_proto::error(code, reason, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_reason_a_client_can_read_back() {
        let s: tonic::Status = ControlError::JobNotFound("github:o#1".into()).into();
        assert_eq!((s.code(), ephemerd_proto::reason_of(&s)), (Code::NotFound, Some(ErrorReason::JobNotFound)));
        assert_eq!(s.message(), "no job github:o#1");
        let s: tonic::Status = ControlError::InvalidField { field: "page_size", message: "at most 500".into() }.into();
        assert_eq!(ephemerd_proto::reason_of(&s), Some(ErrorReason::InvalidField));
        assert!(s.message().starts_with("page_size: "));
    }
}
