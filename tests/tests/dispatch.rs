//! Dispatch end to end: a real `ephemerd worker` (its own data dir and containerd) and the daemon's side of
//! it, `RemoteTarget`, running jobs through the one launch path: exit codes, exec'd steps and logs come
//! back; a call without the worker's token, or from a daemon of another protocol version, is refused; a
//! job in the worker cannot reach the Dispatch port; the worker leaves nothing behind.

// Each test holds the serial guard for its whole run: holding it across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::sync::Arc;
use std::time::Duration;

use ephemerd::dispatch::RemoteTarget;
use ephemerd::dispatch::auth::{Bearer, Token};
use ephemerd::platform::DataDirs;
use ephemerd::store::Store;
use ephemerd::target::{LaunchSpec, Target, launch};
use ephemerd_e2e::worker::WorkerProc;
use ephemerd_e2e::*;
use ephemerd_proto::dispatch::v1 as d;

/// The daemon's side: a data dir of its own and a RemoteTarget to the worker.
async fn daemon_side(w: &WorkerProc, token: Token) -> (tempfile::TempDir, Result<RemoteTarget, String>) {
    let dir = tempfile::tempdir().unwrap();
    let dirs = DataDirs::new(dir.path());
    dirs.create().unwrap();
    let store = Store::open(&dirs.journal()).unwrap();
    let target = RemoteTarget::connect(&w.addr.to_string(), token, dirs, store).await.map_err(|e| e.to_string());
    (dir, target)
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_run_in_the_worker_and_their_exit_steps_and_logs_come_back() {
    let _s = serial();
    let mut w = WorkerProc::start("127.0.0.1:0");
    let (_dir, target) = daemon_side(&w, w.token.clone()).await;
    let target: Arc<dyn Target> = Arc::new(target.unwrap());

    let image = target.prepare_image(JOB_IMAGE, &|_| {}).await.unwrap();
    let id = ephemerd::runtime::new_job_id();
    let log = target.log_path(&id);
    let setup = |_: &ephemerd::target::Job| {
        Ok(LaunchSpec {
            args: Some(vec!["bash".into(), "-c".into(), "echo from-the-worker; echo to-stderr >&2; exit 3".into()]),
            ..Default::default()
        })
    };
    let launched = launch(target.clone(), id.clone(), image.clone(), setup, |job| async move {
        job.target.wait(&job.id).await.unwrap()
    })
    .await;
    launched.destroyed.unwrap();
    let exit = launched.outcome.unwrap();
    assert_eq!(exit.code, 3, "{}", w.log());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("from-the-worker") && text.contains("to-stderr"), "the log came back: {text:?}");
    let in_worker = w.data.path().join("logs");
    let kept: Vec<_> = std::fs::read_dir(&in_worker).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(kept.is_empty(), "the worker drops a log once the daemon has it: {kept:?}");

    // Steps as exec'd processes of a running job, as `ephemerd run` runs them.
    let id = ephemerd::runtime::new_job_id();
    let log = target.log_path(&id);
    let keeper = |_: &ephemerd::target::Job| {
        Ok(LaunchSpec { args: Some(ephemerd::workflow::driver::keeper_args()), ..Default::default() })
    };
    let launched = launch(target.clone(), id, image, keeper, |job| async move {
        let t = &job.target;
        t.exec(&job.id, "step-1", vec!["sh".into(), "-c".into(), "echo step-one-ran; exit 7".into()]).await.unwrap();
        let rc = t.wait_exec(&job.id, "step-1").await.unwrap();
        t.delete_exec(&job.id, "step-1").await.unwrap();
        rc
    })
    .await;
    launched.destroyed.unwrap();
    assert_eq!(launched.outcome.unwrap(), 7);
    assert!(std::fs::read_to_string(&log).unwrap().contains("step-one-ran"));

    // A job that needs this machine's files is refused with the reason, and leaves nothing.
    let id = ephemerd::runtime::new_job_id();
    let bind = |_: &ephemerd::target::Job| {
        Ok(LaunchSpec {
            binds: vec![ephemerd::runtime::containerd::spec::Bind {
                source: "/etc/hostname".into(),
                destination: "/x".into(),
                readonly: true,
            }],
            ..Default::default()
        })
    };
    let launched = launch(target.clone(), id, JOB_IMAGE.into(), bind, |_| async {}).await;
    let err = launched.outcome.unwrap_err().to_string();
    assert!(err.contains("cannot bind this machine's /etc/hostname"), "{err}");

    assert!(target.list().await.unwrap().is_empty(), "the worker keeps no job");
    let stats = raw_client(&w, w.token.clone()).await.stats(d::Empty {}).await.unwrap().into_inner();
    assert!(stats.memory_total_bytes > 0 && stats.cpus > 0 && stats.disk_total_bytes > 0, "{stats:?}");
    drop(target);
    assert_eq!(w.stop(), Some(0), "{}", w.log());
    let left = leftovers(w.data.path());
    assert!(left.is_empty(), "left behind: {left:#?}");
}

async fn raw_client(
    w: &WorkerProc,
    token: Token,
) -> d::dispatch_client::DispatchClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", w.addr)).unwrap().connect().await.unwrap();
    d::dispatch_client::DispatchClient::with_interceptor(channel, Bearer::new(Arc::new(token)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_without_the_token_or_of_another_version_is_refused() {
    let _s = serial();
    let mut w = WorkerProc::start("127.0.0.1:0");
    let (_dir, wrong) = daemon_side(&w, Token::generate()).await;
    let err = wrong.err().expect("a wrong token is refused");
    assert!(err.contains("does not carry the worker's token") && err.contains(&w.addr.to_string()), "{err}");
    // No token at all: the same, on every call.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", w.addr)).unwrap().connect().await.unwrap();
    let mut bare = d::dispatch_client::DispatchClient::new(channel);
    let s = bare.list(d::Empty {}).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    let s = bare.create_job(d::CreateJobRequest { id: "x".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "refused before the request is looked at");
    // The twin: the right token gets in; a daemon of another version is told both versions.
    let mut c = raw_client(&w, w.token.clone()).await;
    assert!(c.list(d::Empty {}).await.is_ok());
    let s = c.hello(d::HelloRequest { version: 99 }).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::FailedPrecondition);
    assert!(s.message().contains("v99") && s.message().contains("v1"), "{}", s.message());
    // Bad input gets the field named.
    let s = c.kill_job(d::KillRequest { id: "../x".into(), signal: 9 }).await.unwrap_err();
    assert!(s.code() == tonic::Code::InvalidArgument && s.message().contains("id"), "{s:?}");
    let bad = d::CreateJobRequest {
        id: "jx".into(),
        image: JOB_IMAGE.into(),
        endpoints: vec!["not-an-address".into()],
        ..Default::default()
    };
    let s = c.create_job(bad).await.unwrap_err();
    assert!(s.code() == tonic::Code::InvalidArgument && s.message().contains("endpoints"), "{s:?}");
    let (_dir, right) = daemon_side(&w, w.token.clone()).await;
    assert_eq!(right.unwrap().hello.version, ephemerd::dispatch::VERSION);
    assert_eq!(w.stop(), Some(0), "{}", w.log());
    let left = leftovers(w.data.path());
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_in_the_worker_cannot_reach_the_dispatch_port() {
    let _s = serial();
    // Listening on every address, the bridge's gateway among them.
    let mut w = WorkerProc::start("0.0.0.0:0");
    let port = w.addr.port();
    let (_dir, target) = daemon_side(&w, w.token.clone()).await;
    let target: Arc<dyn Target> = Arc::new(target.unwrap());
    let image = target.prepare_image(JOB_IMAGE, &|_| {}).await.unwrap();
    let id = ephemerd::runtime::new_job_id();
    let log = target.log_path(&id);
    let script = format!(
        "if (exec 3<>/dev/tcp/{TEST_GATEWAY}/{port}) 2>/tmp/e; then echo dispatch:open; else echo \"dispatch:$(cat /tmp/e)\"; fi
         sleep 2"
    );
    let setup = |_: &ephemerd::target::Job| {
        Ok(LaunchSpec { args: Some(vec!["bash".into(), "-c".into(), script]), ..Default::default() })
    };
    let launched = launch(target.clone(), id, image, setup, |job| async move {
        // While the job runs, the bridge is up: the host reaches the port at the gateway.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let host = std::net::TcpStream::connect_timeout(
            &format!("{TEST_GATEWAY}:{port}").parse().unwrap(),
            Duration::from_secs(3),
        );
        (job.target.wait(&job.id).await.unwrap(), host.is_ok())
    })
    .await;
    launched.destroyed.unwrap();
    let (exit, host_reached) = launched.outcome.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(exit.code, 0, "{text}");
    assert!(host_reached, "the twin: the host reaches the dispatch port at the gateway address");
    let line = text.lines().find(|l| l.starts_with("dispatch:")).unwrap_or_default();
    assert!(line.contains("refused") || line.contains("timed out"), "the job cannot: {text}");
    drop(target);
    assert_eq!(w.stop(), Some(0), "{}", w.log());
}
