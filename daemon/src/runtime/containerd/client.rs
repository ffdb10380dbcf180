//! The connection to containerd: one tonic channel, the `ephemerd` namespace on every request, leases.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ephemerd_proto::ctr::containers::v1::containers_client::ContainersClient;
use ephemerd_proto::ctr::content::v1::content_client::ContentClient;
use ephemerd_proto::ctr::diff::v1::diff_client::DiffClient;
use ephemerd_proto::ctr::images::v1::images_client::ImagesClient;
use ephemerd_proto::ctr::leases::v1::leases_client::LeasesClient;
use ephemerd_proto::ctr::leases::v1::{CreateRequest as LeaseCreate, DeleteRequest as LeaseDelete};
use ephemerd_proto::ctr::snapshots::v1::snapshots_client::SnapshotsClient;
use ephemerd_proto::ctr::tasks::v1::tasks_client::TasksClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// The containerd namespace every object of ours lives in.
pub const NAMESPACE: &str = "ephemerd";
/// The snapshotter used for images and containers.
pub const SNAPSHOTTER: &str = "overlayfs";
/// Label on every containerd object we create: the job it belongs to.
pub const LABEL_JOB: &str = "io.ephemerd.job";

/// Errors of the containerd API, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CtrError {
    #[error("cannot connect to containerd at {socket}: {source}")]
    Connect { socket: String, source: tonic::transport::Error },
    #[error("containerd {op}: {status}")]
    Rpc { op: &'static str, status: Box<tonic::Status> },
}

impl CtrError {
    pub fn rpc(op: &'static str) -> impl FnOnce(tonic::Status) -> Self {
        move |status| Self::Rpc { op, status: Box::new(status) }
    }
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Rpc { status, .. } => Some(status.code()),
            Self::Connect { .. } => None,
        }
    }
}

pub fn status_message(s: &tonic::Status) -> String {
    format!("{} ({:?})", s.message(), s.code())
}

/// A cheap-to-clone handle on containerd.
#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
}

impl Containerd {
    pub async fn connect(socket: &Path) -> Result<Self, CtrError> {
        let channel = ephemerd_proto::unix_channel(socket)
            .await
            .map_err(|source| CtrError::Connect { socket: socket.display().to_string(), source })?;
        Ok(Self { channel })
    }

    /// A request in our namespace.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("containerd-namespace", MetadataValue::from_static(NAMESPACE));
        r
    }

    /// A request in our namespace that adds what it touches to `lease`.
    pub fn leased<T>(&self, msg: T, lease: &str) -> tonic::Request<T> {
        let mut r = self.req(msg);
        if let Ok(v) = MetadataValue::try_from(lease) {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    pub fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone()).max_decoding_message_size(32 << 20)
    }
    pub fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }
    pub fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }
    pub fn leases(&self) -> LeasesClient<Channel> {
        LeasesClient::new(self.channel.clone())
    }
    pub fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }
    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    /// A lease that expires by itself after `ttl`, so a crash cannot pin data forever.
    pub async fn create_lease(&self, purpose: &str, ttl: Duration) -> Result<String, CtrError> {
        let expire = humantime::format_rfc3339_seconds(SystemTime::now() + ttl).to_string();
        let labels = HashMap::from([
            ("containerd.io/gc.expire".to_string(), expire),
            ("io.ephemerd.lease".to_string(), purpose.to_string()),
        ]);
        let resp = self
            .leases()
            .create(self.req(LeaseCreate { id: String::new(), labels }))
            .await
            .map_err(CtrError::rpc("create lease"))?;
        Ok(resp.into_inner().lease.map(|l| l.id).unwrap_or_default())
    }

    pub async fn delete_lease(&self, id: &str) {
        let r = self.leases().delete(self.req(LeaseDelete { id: id.to_string(), sync: false })).await;
        if let Err(s) = r
            && s.code() != tonic::Code::NotFound
        {
            tracing::warn!(lease = id, error = %status_message(&s), "cannot delete lease");
        }
    }
}
