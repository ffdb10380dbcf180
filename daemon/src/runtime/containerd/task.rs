//! A job's containerd objects: rootfs snapshot, container record, task; and their removal in the safe order
//! (task before container: containerd 1.6 lets a container record go while its task runs, which strands it).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ephemerd_proto::ctr::containers::v1::container::Runtime as CtrRuntime;
use ephemerd_proto::ctr::containers::v1::{
    Container, CreateContainerRequest, DeleteContainerRequest, ListContainersRequest,
};
use ephemerd_proto::ctr::snapshots::v1::{ListSnapshotsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest};
use ephemerd_proto::ctr::tasks::v1::{
    CreateTaskRequest, DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, KillRequest, StartRequest,
    WaitRequest,
};
use ephemerd_proto::ctr::types::Mount;
use prost_types::Any;
use tokio_stream::StreamExt;

use super::client::{Containerd, CtrError, LABEL_JOB, SNAPSHOTTER};

pub const RUNTIME: &str = "io.containerd.runc.v2";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

fn not_found(e: &tonic::Status) -> bool {
    e.code() == tonic::Code::NotFound
}

/// Prepares the job's writable rootfs on top of the image's top layer.
pub async fn prepare_rootfs(ctr: &Containerd, id: &str, parent: &str, lease: &str) -> Result<Vec<Mount>, CtrError> {
    let labels = HashMap::from([(LABEL_JOB.to_string(), id.to_string())]);
    let r = ctr
        .snapshots()
        .prepare(ctr.leased(
            PrepareSnapshotRequest { snapshotter: SNAPSHOTTER.into(), key: id.into(), parent: parent.into(), labels },
            lease,
        ))
        .await
        .map_err(CtrError::rpc("prepare rootfs snapshot"))?;
    Ok(r.into_inner().mounts)
}

pub async fn create_container(ctr: &Containerd, id: &str, image: &str, spec_json: Vec<u8>) -> Result<(), CtrError> {
    let container = Container {
        id: id.into(),
        image: image.into(),
        labels: HashMap::from([(LABEL_JOB.to_string(), id.to_string())]),
        runtime: Some(CtrRuntime { name: RUNTIME.into(), options: None }),
        spec: Some(Any { type_url: SPEC_TYPE.into(), value: spec_json }),
        snapshotter: SNAPSHOTTER.into(),
        snapshot_key: id.into(),
        ..Default::default()
    };
    ctr.containers()
        .create(ctr.req(CreateContainerRequest { container: Some(container) }))
        .await
        .map_err(CtrError::rpc("create container"))?;
    Ok(())
}

/// Creates the task with stdout and stderr appended to `log` (which must exist).
pub async fn create_task(ctr: &Containerd, id: &str, rootfs: Vec<Mount>, log: &Path) -> Result<u32, CtrError> {
    let log = log.display().to_string();
    let r = ctr
        .tasks()
        .create(ctr.req(CreateTaskRequest {
            container_id: id.into(),
            rootfs,
            stdout: log.clone(),
            stderr: log,
            ..Default::default()
        }))
        .await
        .map_err(CtrError::rpc("create task"))?;
    Ok(r.into_inner().pid)
}

pub async fn start(ctr: &Containerd, id: &str) -> Result<(), CtrError> {
    ctr.tasks()
        .start(ctr.req(StartRequest { container_id: id.into(), exec_id: String::new() }))
        .await
        .map_err(CtrError::rpc("start task"))?;
    Ok(())
}

/// Adds the process `process_json` (an OCI process) to the running task as `exec_id` and starts it, its
/// stdout and stderr appended to `log` (which must exist).
pub async fn exec(
    ctr: &Containerd,
    id: &str,
    exec_id: &str,
    process_json: Vec<u8>,
    log: &Path,
) -> Result<(), CtrError> {
    let log = log.display().to_string();
    ctr.tasks()
        .exec(ctr.req(ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            stdout: log.clone(),
            stderr: log,
            spec: Some(Any { type_url: PROCESS_TYPE.into(), value: process_json }),
            ..Default::default()
        }))
        .await
        .map_err(CtrError::rpc("exec process"))?;
    ctr.tasks()
        .start(ctr.req(StartRequest { container_id: id.into(), exec_id: exec_id.into() }))
        .await
        .map_err(CtrError::rpc("start exec process"))?;
    Ok(())
}

/// Removes an exited exec process; the shim has copied all its output when this returns. Idempotent.
pub async fn delete_process(ctr: &Containerd, id: &str, exec_id: &str) -> Result<(), CtrError> {
    match ctr
        .tasks()
        .delete_process(ctr.req(DeleteProcessRequest { container_id: id.into(), exec_id: exec_id.into() }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if not_found(&s) => Ok(()),
        Err(s) => Err(CtrError::rpc("delete exec process")(s)),
    }
}

/// How long `wait` rides out an unreachable containerd before giving up (its restart backoff tops out
/// at 30 s).
const WAIT_OUTAGE: Duration = Duration::from_secs(120);

/// Waits for the task to exit; rides out containerd restarts (the shim keeps the task alive meanwhile).
pub async fn wait(ctr: &Containerd, id: &str) -> Result<u32, CtrError> {
    wait_process(ctr, id, "").await
}

/// Waits for the task's process `exec_id` (the init process when empty) to exit, as [`wait`] does.
pub async fn wait_process(ctr: &Containerd, id: &str, exec_id: &str) -> Result<u32, CtrError> {
    let mut backoff = Duration::from_millis(100);
    let mut outage: Option<std::time::Instant> = None;
    loop {
        match ctr.tasks().wait(ctr.req(WaitRequest { container_id: id.into(), exec_id: exec_id.into() })).await {
            Ok(r) => return Ok(r.into_inner().exit_status),
            Err(s)
                if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled)
                    && !s.message().contains("not found")
                    && outage.is_none_or(|t| t.elapsed() < WAIT_OUTAGE) =>
            {
                outage.get_or_insert_with(std::time::Instant::now);
                tracing::debug!(error = %s, "waiting for task: containerd unavailable, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(s) => return Err(CtrError::rpc("wait task")(s)),
        }
    }
}

pub async fn kill(ctr: &Containerd, id: &str, signal: u32) -> Result<(), CtrError> {
    match ctr
        .tasks()
        .kill(ctr.req(KillRequest { container_id: id.into(), exec_id: String::new(), signal, all: true }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if not_found(&s) => Ok(()),
        Err(s) => Err(CtrError::rpc("kill task")(s)),
    }
}

/// Removes task and container record. Idempotent.
pub async fn remove_container(ctr: &Containerd, id: &str) -> Result<(), CtrError> {
    for attempt in 0..50 {
        match ctr.tasks().delete(ctr.req(DeleteTaskRequest { container_id: id.into() })).await {
            Ok(_) => break,
            Err(s) if not_found(&s) => break,
            Err(s) if attempt < 49 => {
                // Still running: kill everything in it and try again.
                tracing::debug!(error = %s, "task not deletable yet");
                kill(ctr, id, 9).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => return Err(CtrError::rpc("delete task")(s)),
        }
    }
    match ctr.containers().delete(ctr.req(DeleteContainerRequest { id: id.into() })).await {
        Ok(_) => Ok(()),
        Err(s) if not_found(&s) => Ok(()),
        Err(s) => Err(CtrError::rpc("delete container")(s)),
    }
}

pub async fn remove_snapshot(ctr: &Containerd, key: &str) -> Result<(), CtrError> {
    match ctr
        .snapshots()
        .remove(ctr.req(RemoveSnapshotRequest { snapshotter: SNAPSHOTTER.into(), key: key.into() }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if not_found(&s) => Ok(()),
        Err(s) => Err(CtrError::rpc("remove snapshot")(s)),
    }
}

/// Ids of containers labelled as ours.
pub async fn owned_containers(ctr: &Containerd) -> Result<Vec<String>, CtrError> {
    let r = ctr
        .containers()
        .list(ctr.req(ListContainersRequest { filters: vec![format!("labels.\"{LABEL_JOB}\"")] }))
        .await
        .map_err(CtrError::rpc("list containers"))?;
    Ok(r.into_inner().containers.into_iter().map(|c| c.id).collect())
}

/// Keys of active snapshots labelled as ours.
pub async fn owned_snapshots(ctr: &Containerd) -> Result<Vec<String>, CtrError> {
    let mut stream = ctr
        .snapshots()
        .list(ctr.req(ListSnapshotsRequest {
            snapshotter: SNAPSHOTTER.into(),
            filters: vec![format!("labels.\"{LABEL_JOB}\"")],
        }))
        .await
        .map_err(CtrError::rpc("list snapshots"))?
        .into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.extend(item.map_err(CtrError::rpc("list snapshots"))?.info.into_iter().map(|i| i.name));
    }
    Ok(out)
}
