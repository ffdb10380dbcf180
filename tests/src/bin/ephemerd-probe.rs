//! A probe the containment tests bind into job containers (the job image has no netcat): it listens or
//! connects over TCP, on IPv4 or IPv6 (link-local with an interface), and prints one line saying what
//! happened, so a test can read the outcome from the job's log.
//!
//! ephemerd-probe listen <addr:port>              accept forever, greet each peer with "hello"
//! ephemerd-probe connect <addr> <port> [iface]   "connect <addr>: ok <greeting>" or "connect <addr>: error <why>"
//! ephemerd-probe socket <raw|packet|vsock|icmp>  open such a socket: "socket <kind>: ok" or "…: error <why>"
//! ephemerd-probe unix <path>                     connect to a Unix socket: "unix <path>: ok" or "…: error <why>"
//! ephemerd-probe ptrace <pid>                    attach to and detach from a process

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["listen", addr] => listen(addr),
        ["connect", addr, port] => connect(addr, port, None),
        ["connect", addr, port, iface] => connect(addr, port, Some(iface)),
        ["socket", kind] => say(&format!("socket {kind}"), open_socket(kind)),
        ["unix", path] => say(
            &format!("unix {path}"),
            std::os::unix::net::UnixStream::connect(path).map(drop).map_err(|e| e.to_string()),
        ),
        ["ptrace", pid] => say(&format!("ptrace {pid}"), trace(pid)),
        _ => {
            eprintln!(
                "usage: ephemerd-probe listen <addr:port> | connect <addr> <port> [iface] | socket <kind> | unix <path> | ptrace <pid>"
            );
            std::process::exit(2);
        }
    }
}

fn listen(addr: &str) {
    let l = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            println!("listen {addr}: error {e}");
            std::process::exit(1);
        }
    };
    println!("listen {addr}: ok");
    for mut c in l.incoming().flatten() {
        let _ = std::io::Write::write_all(&mut c, b"hello\n");
    }
}

fn connect(addr: &str, port: &str, iface: Option<&str>) {
    let target = || -> Result<SocketAddr, String> {
        let ip: IpAddr = addr.parse().map_err(|e| format!("bad address: {e}"))?;
        let port: u16 = port.parse().map_err(|e| format!("bad port: {e}"))?;
        Ok(match (ip, iface) {
            (IpAddr::V6(v6), Some(i)) => {
                let index = std::fs::read_to_string(format!("/sys/class/net/{i}/ifindex"))
                    .map_err(|e| format!("no interface {i}: {e}"))?;
                let scope = index.trim().parse().map_err(|e| format!("ifindex of {i}: {e}"))?;
                SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
            }
            (ip, _) => SocketAddr::new(ip, port),
        })
    };
    let outcome = target().and_then(|t| {
        let s = TcpStream::connect_timeout(&t, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim().to_string())
    });
    match outcome {
        Ok(greeting) => println!("connect {addr}: ok {greeting}"),
        Err(why) => println!("connect {addr}: error {why}"),
    }
}

fn say(what: &str, outcome: Result<(), String>) {
    match outcome {
        Ok(()) => println!("{what}: ok"),
        Err(why) => println!("{what}: error {why}"),
    }
}

fn open_socket(kind: &str) -> Result<(), String> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
    let (family, ty, proto) = match kind {
        "raw" => (AddressFamily::Inet, SockType::Raw, Some(SockProtocol::Icmp)),
        "packet" => (AddressFamily::Packet, SockType::Raw, None),
        "vsock" => (AddressFamily::Vsock, SockType::Stream, None),
        // What ping uses without CAP_NET_RAW (and what net.ipv4.ping_group_range gates).
        "icmp" => (AddressFamily::Inet, SockType::Datagram, Some(SockProtocol::Icmp)),
        other => return Err(format!("unknown kind {other}")),
    };
    socket(family, ty, SockFlag::empty(), proto).map(drop).map_err(|e| e.desc().to_string())
}

fn trace(pid: &str) -> Result<(), String> {
    use nix::sys::ptrace;
    use nix::unistd::Pid;
    let pid = Pid::from_raw(pid.parse().map_err(|e| format!("bad pid: {e}"))?);
    ptrace::attach(pid).map_err(|e| e.desc().to_string())?;
    nix::sys::wait::waitpid(pid, None).map_err(|e| e.desc().to_string())?;
    ptrace::detach(pid, None).map_err(|e| e.desc().to_string())
}
