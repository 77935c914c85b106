# Prints the number of keys an ssh agent holds and their comments, asking it directly
# (SSH_AGENTC_REQUEST_IDENTITIES, draft-miller-ssh-agent): the base image has no ssh client.
import os
import socket
import struct

s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["SSH_AUTH_SOCK"])
s.sendall(struct.pack(">IB", 1, 11))


def recv(n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise SystemExit("the agent closed the connection")
        b += chunk
    return b


(n,) = struct.unpack(">I", recv(4))
msg = recv(n)
if msg[0] != 12:  # SSH_AGENT_IDENTITIES_ANSWER
    raise SystemExit("unexpected agent answer %d" % msg[0])
(count,) = struct.unpack(">I", msg[1:5])
off, comments = 5, []
for _ in range(count):
    (l,) = struct.unpack(">I", msg[off : off + 4])
    off += 4 + l
    (l,) = struct.unpack(">I", msg[off : off + 4])
    comments.append(msg[off + 4 : off + 4 + l].decode())
    off += 4 + l
print(count, *comments)
