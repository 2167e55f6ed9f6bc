#!/bin/bash
# ejabberd with mod_muc on conference.bench.local, for bench/muc.sh.
# The harness's peers/ejabberd.sh (which leaves MUC out) with a mod_muc block
# added to the modules it writes, its own folder under PEER_ROOT
# (ejabberd-muc), and otherwise the same config and the same interface:
#   ejabberd-muc.sh start|stop|adduser N|pids|info
# It must sit beside the harness's ejabberd.sh and common.sh (bench/muc.sh
# copies it into the harness copy's peers/).
#
# MUC settings, matching what bench/parley.sh gives Parley: anyone may create
# rooms, up to 2000 occupants a room, no flood or shaper limits, 20 messages
# of history kept (the bench joins with maxstanzas='0', so none is sent).
# max_users_presence is raised so that a 1000-occupant room still gets every
# presence broadcast, as Parley sends them.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=$HERE/ejabberd.sh
GEN=$HERE/.ejabberd-muc-gen.sh
if [ ! -f "$BASE" ]; then
    echo "ejabberd-muc.sh: no $BASE (run it from the harness copy's peers/)" >&2
    exit 1
fi
MUC_BLOCK='  mod_muc:
    host: "conference.@HOST@"
    access: all
    access_create: all
    access_persistent: all
    access_admin: none
    max_users: 2000
    max_users_admin_threshold: 5
    max_users_presence: 2000
    max_user_conferences: 100
    min_message_interval: 0
    min_presence_interval: 0
    history_size: 20
    room_shaper: none
    user_message_shaper: none
    user_presence_shaper: none
    default_room_options:
      persistent: false
      logging: false
      mam: false
      max_users: 2000' \
awk '{ print } /^  mod_version: \{\}$/ { print ENVIRON["MUC_BLOCK"]; n++ }
     END { exit n != 1 }' "$BASE" | sed 's/^NAME=ejabberd$/NAME=ejabberd-muc/' > "$GEN.tmp"
if [ "${PIPESTATUS[0]}" != 0 ] || ! grep -q '^NAME=ejabberd-muc$' "$GEN.tmp"; then
    echo "ejabberd-muc.sh: $BASE no longer has the lines this patches (mod_version, NAME)" >&2
    exit 1
fi
mv "$GEN.tmp" "$GEN"
exec bash "$GEN" "$@"
