# etc/parley.yml -> /etc/parley/parley.yml of the Debian package (debian/rules).
s|^#log_file: /var/log/parley/parley.log .*|log_file: /var/log/parley/parley.log   # rotated by /etc/logrotate.d/parley|
s|^#pidfile: /run/parley/parley.pid .*|pidfile: /run/parley/parley.pid|
s|^#user: parley .*|user: parley                  # started as root (not by systemd): run as this user|
s|^#group: parley .*|group: parley|
s|^  socket: parley.sock .*|  socket: /run/parley/parley.sock   # /run/parley: systemd's RuntimeDirectory|
s|^  mode: "0600" .*|  mode: "0660"                # root and the parley group may use parleyctl|
s|^  #group: parley .*|  group: parley|
s|^  key_file: fast.key .*|  key_file: /var/lib/parley/fast.key   # made 0600 when missing|
s|^  path: parley.db .*|  path: /var/lib/parley/parley.db   # sqlite: the database file|
s|^  certificate: cert.pem .*|  certificate: cert.pem       # /etc/parley/cert.pem: self-signed, made at installation|
s|^  key: key.pem .*|  key: key.pem                # /etc/parley/key.pem: readable by the parley user only|
s|^  example.com:$|  localhost:                   # replace with the domain(s) of this server|
s|^    admins: \[admin@example.com\]$|    admins: [admin@localhost]|
