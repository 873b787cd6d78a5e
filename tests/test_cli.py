"""The pshm command-line tool, run as a real process: help and usage errors,
block commands, holding with and without the tracker, lists and the manager.
CPython's multiprocessing.shared_memory is the reference where it applies."""
import json
import os
import pwd
import signal
import subprocess
import tempfile
import time
import unittest
from multiprocessing import resource_tracker, shared_memory

from pshmtest import CliTestCase, read_line, run, shm_exists, spawn, unique_name, wait_gone

ALL_HELP = [
    [], ["create"], ["attach"], ["info"], ["ls"], ["read"], ["write"], ["rm"],
    ["list"], ["list", "new"], ["list", "show"], ["list", "get"], ["list", "set"],
    ["list", "format"], ["manager"], ["manager", "serve"], ["manager", "block"],
    ["manager", "list"], ["manager", "ls"], ["manager", "release"],
    ["manager", "shutdown"], ["lock"],
]


def info_json(test, name):
    return json.loads(test.pshm_ok("info", name, "--json"))


class HelpAndUsage(CliTestCase):
    def test_every_command_has_help(self):
        for words in ALL_HELP:
            with self.subTest(words=words):
                out = self.pshm_ok(*words, "--help").decode()
                self.assertTrue(out.startswith("usage: pshm"), out)
                self.assertIn(words[-1] if words else "COMMAND", out.splitlines()[0])

    def test_version(self):
        self.assertEqual(self.pshm_ok("--version"), b"pshm 0.1.0\n")

    def test_usage_errors_exit_2(self):
        cases = [
            [], ["frobnicate"], ["create"], ["create", "--size"],
            ["create", "--size", "1", "--bogus"], ["create", "--size", "1", "extra"],
            ["create", "--size", "1", "--track"], ["attach", "x"], ["info"],
            ["info", "a", "b"], ["ls", "x"], ["rm"], ["read"], ["write"],
            ["list"], ["list", "nope"], ["list", "get", "x"], ["list", "get", "x", "1.5"],
            ["list", "new", "not_a_literal"], ["list", "set", "x", "0", "'unterminated"],
            ["manager"], ["manager", "nope"], ["manager", "block"],
            ["manager", "--bogus", "ls"], ["lock"], ["lock", "x"],
        ]
        for args in cases:
            with self.subTest(args=args):
                err = self.pshm_fails(*args, status=2)
                self.assertTrue(err.startswith("pshm"), err)
                self.assertIn("--help", err)

    def test_bad_sizes_are_rejected(self):
        for size in ["-1", "-0", " 5", "+5", "0x10", "12abc", "1Q", "1k", "1KB",
                     "18446744073709551616", "18446744073709551615K", "17179869184G", ""]:
            with self.subTest(size=size):
                err = self.pshm_fails("create", "--size", size, status=2)
                self.assertIn("size '%s'" % size, err)

    def test_negative_index_needs_double_dash(self):
        err = self.pshm_fails("list", "get", "somelist", "-1", status=2)
        self.assertIn("--", err)

    def test_manager_client_needs_address_and_key(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("PSHM_MANAGER_ADDRESS", "PSHM_AUTHKEY_FILE")}
        err = self.pshm_fails("manager", "ls", status=2, env=env)
        self.assertIn("PSHM_MANAGER_ADDRESS", err)
        err = self.pshm_fails("manager", "--address", "unix:/nonexistent", "ls",
                              status=2, env=env)
        self.assertIn("PSHM_AUTHKEY_FILE", err)


class Errors(CliTestCase):
    def test_missing_block_is_named(self):
        name = unique_name("nosuch")
        for args in (["info", name], ["read", name], ["write", name],
                     ["attach", name, "--hold"], ["info", name, "--json"]):
            with self.subTest(args=args):
                err = self.pshm_fails(*args)
                self.assertTrue(err.startswith("pshm: "), err)
                self.assertIn(name, err)
        self.assertFalse(shm_exists(name))

    def test_bad_name(self):
        err = self.pshm_fails("info", "a/b")
        self.assertIn("a/b", err)

    def test_create_existing_name_fails(self):
        name = self.create(16, unique_name("dup"))
        err = self.pshm_fails("create", "--name", name, "--size", "16")
        self.assertIn(name, err)
        self.assertEqual(info_json(self, name)["size"], 16)

    def test_create_size_zero_fails(self):
        name = unique_name("zero")
        err = self.pshm_fails("create", "--name", name, "--size", "0")
        self.assertIn(name, err)
        self.assertFalse(shm_exists(name))


class Sizes(CliTestCase):
    def test_suffixes(self):
        for text, size in [("10", 10), ("1K", 1024), ("3KiB", 3072), ("1M", 1 << 20)]:
            with self.subTest(text=text):
                name = self.create(text)
                self.assertEqual(info_json(self, name)["size"], size)

    def test_giga_suffix_parses_as_an_offset(self):
        name = self.create(8)
        err = self.pshm_fails("read", name, "--offset", "1G")
        self.assertIn(str(1 << 30), err)


class ReadWrite(CliTestCase):
    def test_round_trip_with_offsets(self):
        name = self.create(64)
        self.pshm_ok("write", name, "--offset", "10", input=b"abc")
        whole = self.pshm_ok("read", name)
        self.assertEqual(whole, bytes(10) + b"abc" + bytes(51))
        self.assertEqual(self.pshm_ok("read", name, "--offset", "10", "--length", "3"), b"abc")
        self.assertEqual(self.pshm_ok("read", name, "--offset", "11"), b"bc" + bytes(51))
        self.assertEqual(self.pshm_ok("read", name, "--offset", "64"), b"")
        self.pshm_ok("write", name, "--offset", "60", input=b"WXYZ")
        self.assertEqual(self.pshm_ok("read", name, "--offset", "60"), b"WXYZ")

    def test_large_write(self):
        data = os.urandom(3 * 65536 + 17)
        name = self.create("1M")
        self.pshm_ok("write", name, "--offset", "5", input=data)
        out = self.pshm_ok("read", name, "--offset", "5", "--length", str(len(data)))
        self.assertEqual(out, data)

    def test_read_bounds(self):
        name = self.create(32)
        for args in (["--offset", "33"], ["--offset", "30", "--length", "3"],
                     ["--length", "33"], ["--offset", "1K"]):
            with self.subTest(args=args):
                err = self.pshm_fails("read", name, *args)
                self.assertIn(name, err)
                self.assertIn("past the end", err)

    def test_write_past_end_writes_nothing(self):
        name = self.create(16)
        self.pshm_ok("write", name, input=b"0123456789abcdef")
        for offset, data in ((10, b"XXXXXXX"), (0, b"Y" * 17), (17, b""), (16, b"Z")):
            with self.subTest(offset=offset):
                err = self.pshm_fails("write", name, "--offset", str(offset), input=data)
                self.assertIn(name, err)
                self.assertEqual(self.pshm_ok("read", name), b"0123456789abcdef")

    def test_write_empty_input_changes_nothing(self):
        name = self.create(4)
        self.pshm_ok("write", name, input=b"abcd")
        self.pshm_ok("write", name, "--offset", "4", input=b"")
        self.assertEqual(self.pshm_ok("read", name), b"abcd")


class Remove(CliTestCase):
    def test_rm_several_with_one_missing(self):
        first, second = self.create(8), self.create(8)
        missing = unique_name("missing")
        err = self.pshm_fails("rm", first, missing, "/" + second)
        self.assertIn(missing, err)
        self.assertNotIn(first, err)
        self.assertFalse(shm_exists(first))
        self.assertFalse(shm_exists(second))

    def test_rm_all_present(self):
        names = [self.create(8) for _ in range(3)]
        self.pshm_ok("rm", *names)
        self.assertFalse(any(shm_exists(n) for n in names))


class Listing(CliTestCase):
    def test_info_text(self):
        name = self.create(123)
        out = self.pshm_ok("info", name).decode()
        self.assertIn(name, out)
        self.assertIn("123", out)
        self.assertIn("0600", out)
        self.assertIn(pwd.getpwuid(os.getuid()).pw_name, out)

    def test_info_json(self):
        name = self.create(77)
        info = info_json(self, name)
        self.assertEqual(info["name"], name)
        self.assertEqual(info["size"], 77)
        self.assertEqual(info["mode"], "0600")
        self.assertEqual(info["uid"], os.getuid())
        self.assertEqual(info["owner"], pwd.getpwuid(os.getuid()).pw_name)

    def test_json_escapes_awkward_names(self):
        raw = os.fsencode(unique_name("json")) + b'_q"b\\s\tt\x01\xc3\xa9\xff\xed\xa0\x80'
        created = self.pshm_ok("create", "--name", raw, "--size", "5").rstrip(b"\n")
        self.assertEqual(created, raw)
        name = os.fsdecode(raw)
        self.track(name)
        self.assertEqual(info_json(self, raw)["name"], name)
        listing = json.loads(self.pshm_ok("ls", "--json"))
        self.assertIn(name, [entry["name"] for entry in listing])
        self.assertIn(name, os.listdir("/dev/shm"))

    def test_human_output_escapes_names(self):
        # ESC [2J clears the screen, \r rewinds the line, \x07 rings, \n
        # splits the row, \xff is not UTF-8, \xc2\x9b is the C1 form of ESC [,
        # \x7f is DEL; é stays, a backslash is doubled.
        prefix = os.fsencode(unique_name("esc"))
        raw = prefix + b"\x1b[2J\r\x07\nA\xff\xc3\xa9\\\xc2\x9b\x7f"
        shown = prefix + rb"\x1b[2J\r\a\nA\xff" + "é".encode() + rb"\\\xc2\x9b\x7f"
        self.pshm_ok("create", "--name", raw, "--size", "5")
        self.track(os.fsdecode(raw))
        info = self.pshm_ok("info", raw)
        listing = self.pshm_ok("ls")
        for label, out in (("info", info), ("ls", listing)):
            with self.subTest(output=label):
                for byte in (b"\x1b", b"\r", b"\x07", b"\xff", b"\xc2\x9b", b"\x7f"):
                    self.assertNotIn(byte, out)
        self.assertIn(b"name:  " + shown + b"\n", info)
        rows = [line.split() for line in listing.split(b"\n") if line.startswith(prefix)]
        self.assertEqual(rows, [[shown, b"5", b"0600", pwd.getpwuid(os.getuid()).pw_name
                                 .encode()]])

    def test_ls_columns_align_with_multibyte_names(self):
        names = [self.create(8, unique_name("wide") + suffix) for suffix in ("_ééé", "_abc")]
        lines = [line for line in self.pshm_ok("ls").decode().splitlines()
                 if line.startswith(tuple(names))]
        self.assertEqual(len(lines), 2)
        self.assertEqual(len(lines[0]), len(lines[1]), lines)

    def test_ls_matches_dev_shm(self):
        names = [self.create(size) for size in (10, 20)]
        listing = {e["name"]: e for e in json.loads(self.pshm_ok("ls", "--json"))}
        for name, size in zip(names, (10, 20)):
            self.assertEqual(listing[name]["size"], size)
        text = self.pshm_ok("ls").decode().splitlines()
        self.assertEqual(text[0].split(), ["NAME", "SIZE", "MODE", "OWNER"])
        rows = {line.split()[0]: line.split() for line in text[1:]}
        self.assertEqual(rows[names[0]][1:3], ["10", "0600"])
        self.assertEqual(rows[names[1]][1:3], ["20", "0600"])


class Hold(CliTestCase):
    def hold(self, *args):
        """Start a holding pshm; wait for the name it prints."""
        proc = self.keep(spawn(*args))
        name = read_line(proc)
        self.track(name)
        self.assertTrue(shm_exists(name))
        return proc, name

    def test_tracked_holder_killed_block_removed(self):
        proc, name = self.hold("create", "--size", "64", "--track", "--hold")
        proc.kill()
        proc.wait()
        self.assertTrue(wait_gone(name, 5), "the tracker did not remove " + name)

    def test_tracked_holder_stdin_eof_exits_and_tracker_removes(self):
        proc, name = self.hold("create", "--size", "64", "--track", "--hold",
                               "--name", unique_name("eof"))
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=10), 0)
        self.assertTrue(wait_gone(name, 5), "the tracker did not remove " + name)

    def test_untracked_holder_killed_block_stays(self):
        proc, name = self.hold("create", "--size", "64", "--hold")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)
        self.assertTrue(shm_exists(name))

    def test_attach_no_track_survives_holder(self):
        name = self.create(64)
        proc, held = self.hold("attach", name, "--hold", "--no-track", "--readonly")
        self.assertEqual(held, name)
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=10), 0)
        time.sleep(0.5)
        self.assertTrue(shm_exists(name))

    def test_attach_removes_only_what_its_creator_marked(self):
        # The creator decides: a block made with --track is removed once its
        # last holder (here an attacher) is gone; attaching never decides.
        creator, name = self.hold("create", "--size", "64", "--track", "--hold")
        holder, _ = self.hold("attach", name, "--hold")
        creator.kill()
        creator.wait()
        self.assertTrue(shm_exists(name), "removed while an attacher held it")
        holder.stdin.close()
        self.assertEqual(holder.wait(timeout=10), 0)
        self.assertTrue(wait_gone(name, 5))

    def test_tracked_block_kept_while_another_holds_it(self):
        proc, name = self.hold("create", "--size", "64", "--track", "--hold")
        other, _ = self.hold("attach", name, "--hold", "--no-track")
        proc.kill()
        proc.wait()
        time.sleep(0.5)
        self.assertTrue(shm_exists(name), "removed while still held")
        other.stdin.close()
        other.wait(timeout=10)
        self.assertTrue(wait_gone(name, 5))

    def test_held_block_is_shared(self):
        proc, name = self.hold("create", "--size", "16", "--hold", "--populate")
        self.pshm_ok("write", name, input=b"shared")
        self.assertEqual(self.pshm_ok("read", name, "--length", "6"), b"shared")
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=10), 0)
        self.assertTrue(shm_exists(name))


class Lists(CliTestCase):
    def attach_list(self, name):
        sl = shared_memory.ShareableList(name=name)
        resource_tracker.unregister(sl.shm._name, "shared_memory")
        self.addCleanup(sl.shm.close)
        return sl

    def new_list(self, *literals, name=None):
        args = ["list", "new"] + (["--name", name] if name else []) + ["--", *literals]
        return self.track(self.pshm_ok(*args).decode().strip())

    def test_new_matches_python(self):
        name = self.new_list("1", "-2.5", "'héllo'", "b'by\\x00tes'", "None", "True",
                             "-9223372036854775808")
        sl = self.attach_list(name)
        self.assertEqual(list(sl), [1, -2.5, "héllo", b"by\x00tes", None, True,
                                    -9223372036854775808])
        self.assertEqual(self.pshm_ok("list", "show", name).decode().rstrip("\n"), repr(sl))
        self.assertEqual(self.pshm_ok("list", "format", name).decode().rstrip("\n"),
                         sl.format)

    def test_empty_and_named(self):
        wanted = unique_name("list")
        name = self.new_list(name=wanted)
        self.assertEqual(name, wanted)
        sl = self.attach_list(name)
        self.assertEqual(len(sl), 0)
        self.assertEqual(self.pshm_ok("list", "show", name).decode().rstrip("\n"), repr(sl))

    def test_get_with_negative_index(self):
        name = self.new_list("10", "'mid'", "b'end'")
        self.assertEqual(self.pshm_ok("list", "get", name, "0"), b"10\n")
        self.assertEqual(self.pshm_ok("list", "get", name, "--", "-1"), b"b'end'\n")
        self.assertEqual(self.pshm_ok("list", "get", "--", name, "-2"), b"'mid'\n")
        err = self.pshm_fails("list", "get", name, "3")
        self.assertIn(name, err)
        self.pshm_fails("list", "get", name, "--", "-4")

    def test_set_seen_by_python(self):
        name = self.new_list("1", "'abcdef'", "2.5")
        self.pshm_ok("list", "set", name, "0", "42")
        self.pshm_ok("list", "set", name, "--", "-2", "'xyz'")
        self.pshm_ok("list", "set", name, "--", "-1", "None")
        sl = self.attach_list(name)
        self.assertEqual(list(sl), [42, "xyz", None])
        self.assertEqual(self.pshm_ok("list", "show", name).decode().rstrip("\n"), repr(sl))

    def test_set_too_big_leaves_item(self):
        name = self.new_list("'ab'")
        err = self.pshm_fails("list", "set", name, "0", "'" + "x" * 100 + "'")
        self.assertIn(name, err)
        self.assertEqual(self.pshm_ok("list", "get", name, "0"), b"'ab'\n")

    def test_python_made_list(self):
        sl = shared_memory.ShareableList([7, "seven", b"\x07", 7.5, False, None],
                                         name=unique_name("pylist"))
        self.addCleanup(sl.shm.unlink)
        self.addCleanup(sl.shm.close)
        self.assertEqual(self.pshm_ok("list", "show", sl.shm.name).decode().rstrip("\n"),
                         repr(sl))
        self.pshm_ok("list", "set", sl.shm.name, "1", "'SEVEN'")
        self.assertEqual(sl[1], "SEVEN")

    def test_not_a_list(self):
        name = self.create(8)
        err = self.pshm_fails("list", "show", name)
        self.assertIn(name, err)


class Manager(CliTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.TemporaryDirectory(prefix="pshm-cli-")
        self.addCleanup(self.dir.cleanup)
        self.keyfile = os.path.join(self.dir.name, "key")
        with open(self.keyfile, "wb") as f:
            f.write(os.urandom(32))

    def serve(self, *args, env=None):
        """Start `pshm manager serve`; return the process and its address."""
        errlog = open(os.path.join(self.dir.name, "serve.err"), "wb")
        self.addCleanup(errlog.close)
        proc = self.keep(spawn("manager", "serve", *args, env=env, stderr=errlog))
        return proc, read_line(proc)

    def client(self, address, *args, keyfile=None, status=0):
        res = run("manager", "--address", address, "--authkey-file", keyfile or self.keyfile,
                  *args)
        self.assertEqual(res.returncode, status, res.stderr)
        return res

    def test_block_list_ls_release_shutdown(self):
        sock = "unix:" + os.path.join(self.dir.name, "sock")
        proc, address = self.serve("--address", sock, "--authkey-file", self.keyfile)
        self.assertEqual(address, sock)
        block = self.track(self.client(address, "block", "--size", "1K").stdout.decode().strip())
        self.assertEqual(json.loads(self.pshm_ok("info", block, "--json"))["size"], 1024)
        lst = self.track(self.client(address, "list", "--", "1", "-2", "'a'").stdout
                         .decode().strip())
        sl = shared_memory.ShareableList(name=lst)
        resource_tracker.unregister(sl.shm._name, "shared_memory")
        self.assertEqual(list(sl), [1, -2, "a"])
        sl.shm.close()
        names = self.client(address, "ls").stdout.decode().split()
        self.assertEqual(sorted(names), sorted([block, lst]))
        self.client(address, "release", block)
        self.assertFalse(shm_exists(block))
        self.assertEqual(self.client(address, "ls").stdout.decode().split(), [lst])
        self.client(address, "shutdown")
        self.assertEqual(proc.wait(timeout=10), 0)
        self.assertFalse(shm_exists(lst))

    def test_wrong_key_and_env_stand_ins(self):
        proc, address = self.serve("--address", "tcp:127.0.0.1:0",
                                   "--authkey-file", self.keyfile)
        self.assertTrue(address.startswith("tcp:127.0.0.1:"), address)
        self.assertNotEqual(address, "tcp:127.0.0.1:0")
        wrong = os.path.join(self.dir.name, "wrong")
        with open(wrong, "wb") as f:
            f.write(b"not the key")
        err = self.client(address, "ls", keyfile=wrong, status=1).stderr.decode()
        self.assertTrue(err.startswith("pshm: "), err)
        env = dict(os.environ, PSHM_MANAGER_ADDRESS=address, PSHM_AUTHKEY_FILE=self.keyfile)
        name = self.track(self.pshm_ok("manager", "block", "--size", "10", env=env)
                          .decode().strip())
        self.assertEqual(self.pshm_ok("manager", "ls", env=env).decode().split(), [name])
        self.pshm_ok("manager", "shutdown", env=env)
        self.assertEqual(proc.wait(timeout=10), 0)
        self.assertFalse(shm_exists(name))

    def test_serve_generates_a_key_file(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("PSHM_MANAGER_ADDRESS", "PSHM_AUTHKEY_FILE")}
        env["TMPDIR"] = self.dir.name
        proc, address = self.serve(env=env)
        with open(os.path.join(self.dir.name, "serve.err")) as f:
            err = f.read()
        keyfile = err.split("random key to ")[1].split()[0]
        self.assertTrue(keyfile.startswith(self.dir.name), err)
        self.assertEqual(os.stat(keyfile).st_mode & 0o777, 0o600)
        self.assertEqual(os.path.getsize(keyfile), 32)
        self.client(address, "ls", keyfile=keyfile)
        self.client(address, "shutdown", keyfile=keyfile)
        self.assertEqual(proc.wait(timeout=10), 0)
        self.assertFalse(os.path.exists(keyfile))

    def test_sigterm_removes_owned_blocks(self):
        proc, address = self.serve("--authkey-file", self.keyfile)
        name = self.track(self.client(address, "block", "--size", "64").stdout.decode().strip())
        self.assertTrue(shm_exists(name))
        proc.terminate()
        self.assertEqual(proc.wait(timeout=10), 0)
        self.assertFalse(shm_exists(name))

    def test_unreachable_server(self):
        address = "unix:" + os.path.join(self.dir.name, "nobody")
        err = self.client(address, "ls", status=1).stderr.decode()
        self.assertIn("nobody", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
