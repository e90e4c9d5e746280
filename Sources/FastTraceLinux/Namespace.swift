// Entering a named network namespace (`ip netns add NAME` creates /run/netns/NAME). Used by the CLI's
// `--netns` and by the lab tests. setns affects only the calling thread; sockets keep the namespace
// they were created in, so enter first, then open the transport.

#if canImport(Glibc)
import Glibc
#endif
import CFastTrace

/// Moves the calling thread into the network namespace `/run/netns/<name>`. Call it before opening
/// any socket or loading the route table on that thread. Needs CAP_SYS_ADMIN.
public func enterNetworkNamespace(named name: String) throws(SystemError) {
    guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
        throw SystemError(operation: "open(/run/netns/\(name))", errno: EINVAL)
    }
    let path = "/run/netns/\(name)"
    let fd = OwnedDescriptor(try syscallBlocking("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) })
    do {
        try syscallBlocking("setns(\(path), CLONE_NEWNET)") { CFastTrace_setns_net(fd.raw) }
    } catch {
        // setns needs CAP_SYS_ADMIN, not the transport's capabilities; say so plainly.
        if error.isPermissionDenied {
            throw SystemError(operation: error.operation, errno: error.errno,
                              detail: "entering a network namespace needs CAP_SYS_ADMIN (run as root)")
        }
        throw error
    }
}
