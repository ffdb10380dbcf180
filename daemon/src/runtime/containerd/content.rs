//! containerd's content store: writing blobs with the Stat/Write/Commit protocol (skipping what is already
//! there), reading them back, and setting their garbage-collection labels.

use std::collections::HashMap;

use ephemerd_proto::ctr::content::v1::{
    Info, ReadContentRequest, UpdateRequest, WriteAction, WriteContentRequest, WriteContentResponse,
};
use prost_types::FieldMask;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::client::{Containerd, CtrError, status_message};

const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Ctr(#[from] CtrError),
    #[error("reading blob {digest}: {source}")]
    Source { digest: String, source: std::io::Error },
    #[error("writing blob {digest} to containerd: {message}")]
    Write { digest: String, message: String },
}

/// What a blob is: enough to write and verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: i64,
    pub media_type: String,
}

/// The outcome of opening a write: either the store already has the blob, or it wants the bytes.
pub enum Opened {
    Present,
    Writer(Box<BlobWriter>),
}

/// An open `Content.Write` stream.
pub struct BlobWriter {
    digest: String,
    size: i64,
    tx: tokio::sync::mpsc::Sender<WriteContentRequest>,
    responses: tonic::Streaming<WriteContentResponse>,
}

/// Opens a write of `blob` under `lease`. `Present` means the store has it (it now belongs to the lease
/// too); the caller must then not download it again.
pub async fn open(ctr: &Containerd, lease: &str, blob: &Blob) -> Result<Opened, ContentError> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let stat = WriteContentRequest {
        action: WriteAction::Stat as i32,
        r#ref: format!("ephemerd-{}", blob.digest),
        total: blob.size,
        expected: blob.digest.clone(),
        ..Default::default()
    };
    let _ = tx.send(stat).await;
    match ctr.content().write(ctr.leased(ReceiverStream::new(rx), lease)).await {
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(Opened::Present),
        Err(s) => Err(CtrError::rpc("content write")(s).into()),
        Ok(resp) => {
            let mut responses = resp.into_inner();
            // The answer to Stat: the offset already held under the ref is discarded by writing from 0.
            responses.message().await.map_err(|s| write_err(&blob.digest, &s))?;
            Ok(Opened::Writer(Box::new(BlobWriter { digest: blob.digest.clone(), size: blob.size, tx, responses })))
        }
    }
}

fn write_err(digest: &str, s: &tonic::Status) -> ContentError {
    ContentError::Write { digest: digest.to_string(), message: status_message(s) }
}

impl BlobWriter {
    /// Copies `src` into the store in 1 MiB chunks, calling `progress` with each chunk's size, then
    /// commits with `labels`. containerd checks size and digest at commit.
    pub async fn copy_from<R: AsyncRead + Unpin>(
        mut self: Box<Self>,
        mut src: R,
        labels: HashMap<String, String>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), ContentError> {
        let digest = self.digest.clone();
        let mut offset: i64 = 0;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                let n = src
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|source| ContentError::Source { digest: digest.clone(), source })?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            let req = WriteContentRequest {
                action: WriteAction::Write as i32,
                offset,
                data: buf[..filled].to_vec(),
                ..Default::default()
            };
            self.send(req).await?;
            self.responses.message().await.map_err(|s| write_err(&digest, &s))?;
            offset += filled as i64;
            progress(filled as u64);
        }
        let commit = WriteContentRequest {
            action: WriteAction::Commit as i32,
            offset,
            total: self.size,
            expected: digest.clone(),
            labels,
            ..Default::default()
        };
        self.send(commit).await?;
        match self.responses.message().await {
            Ok(_) => {}
            // Someone else committed the same digest meanwhile: that is success.
            Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(write_err(&digest, &s)),
        }
        drop(self.tx);
        // containerd 1.6 repeats the commit response once before closing the stream.
        while let Ok(Some(_)) = self.responses.message().await {}
        Ok(())
    }

    async fn send(&self, req: WriteContentRequest) -> Result<(), ContentError> {
        self.tx.send(req).await.map_err(|_| ContentError::Write {
            digest: self.digest.clone(),
            message: "containerd closed the write stream".into(),
        })
    }
}

/// Merges `labels` into a blob's labels.
pub async fn set_labels(ctr: &Containerd, digest: &str, labels: HashMap<String, String>) -> Result<(), CtrError> {
    if labels.is_empty() {
        return Ok(());
    }
    let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
    let info = Info { digest: digest.to_string(), labels, ..Default::default() };
    ctr.content()
        .update(ctr.req(UpdateRequest { info: Some(info), update_mask: Some(FieldMask { paths }) }))
        .await
        .map_err(CtrError::rpc("content update"))?;
    Ok(())
}

/// Reads a whole (small) blob: manifests, indexes, configs.
pub async fn read_all(ctr: &Containerd, digest: &str) -> Result<Vec<u8>, CtrError> {
    let mut stream = ctr
        .content()
        .read(ctr.req(ReadContentRequest { digest: digest.to_string(), offset: 0, size: 0 }))
        .await
        .map_err(CtrError::rpc("content read"))?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(CtrError::rpc("content read"))?.data);
    }
    Ok(out)
}
