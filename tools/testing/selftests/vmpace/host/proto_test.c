// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of vmpace's protocol codec and time conversions, and of its
 * reading of QEMU's command line (qemu-args.c).  Prints TAP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock-bounds.h"
#include "proto.h"
#include "vmpace.h"

static int n, failed;

#define T(cond, ...) do {						\
	n++;								\
	if (cond) {							\
		printf("ok %d - ", n);					\
	} else {							\
		printf("not ok %d - ", n);				\
		failed++;						\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
} while (0)

/* Decodes @len bytes one at a time; the number of messages, -1 on error. */
static int fr_bytewise(struct vp_fr_decoder *d, const uint8_t *in, size_t len,
		       struct vp_fr_msg *last)
{
	struct vp_fr_msg m;
	bool done;
	size_t i;
	int msgs = 0;

	for (i = 0; i < len; i++) {
		if (vp_fr_decode(d, in + i, 1, &done, &m) != 1)
			return -1;
		if (done) {
			*last = m;
			msgs++;
		}
	}
	return msgs;
}

static void framed(void)
{
	static struct vp_fr_decoder d;
	static uint8_t big[VP_FR_MAX_PAYLOAD + 1], big2[VP_FR_HDR + VP_FR_MAX_PAYLOAD + 1];
	uint8_t in[4 * VP_FR_HDR + VP_FR_MAX_PAYLOAD + 64] = { 0 }, pl[VP_FR_HELLO_LEN] = { 0 };
	struct vp_fr_msg m = { 0 };
	size_t len;
	bool done;
	long used;

	/* the opening, a HELLO, a GRANT and a BYE, as a simulator sends them */
	vp_put_be32(pl, 1);
	vp_put_be32(pl + 4, 3);
	len = VP_FR_HDR;
	len += vp_fr_encode(in + len, VP_FR_HELLO, 0, 0, pl, sizeof(pl));
	len += vp_fr_encode(in + len, VP_FR_GRANT, 0, 0x0102030405060708ull, NULL, 0);
	T(len == 2 * VP_FR_HDR + 12 + VP_FR_HDR &&
	  !memcmp(in + 2 * VP_FR_HDR + 12, "\x00\x10\x00\x00\x00\x00\x00\x00"
		  "\x01\x02\x03\x04\x05\x06\x07\x08", 16),
	  "framed: GRANT encoded as u16 type, u16 flags, u32 len, u64 t, big-endian");
	len += vp_fr_encode(in + len, VP_FR_BYE, 0, 0, NULL, 0);

	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	T(vp_fr_want(&d) == VP_FR_HDR, "framed: a simulator's decoder wants the 16-byte opening");
	used = vp_fr_decode(&d, in, len, &done, &m);
	T(used == 2 * VP_FR_HDR + 12 && done && m.type == VP_FR_HELLO && m.len == 12 &&
	  vp_get_be32(m.payload + 4) == 3, "framed: the opening, then one message per call (HELLO)");
	used = vp_fr_decode(&d, in + 44, len - 44, &done, &m);
	T(used == 16 && done && m.type == VP_FR_GRANT && m.t == 0x0102030405060708ull,
	  "framed: GRANT with its guest time");
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	T(fr_bytewise(&d, in, len, &m) == 3 && m.type == VP_FR_BYE && !vp_fr_partial(&d),
	  "framed: the same stream a byte at a time: 3 messages");
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	fr_bytewise(&d, in, 20, &m);
	T(vp_fr_partial(&d) && vp_fr_want(&d) == 12, "framed: a cut header is partial");
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	fr_bytewise(&d, in, 5, &m);
	T(vp_fr_partial(&d), "framed: a cut opening is partial");

	/* hostile input: a clear error, nothing consumed past it */
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	in[0] = 0x00; in[1] = 0x00; in[2] = 0x27; in[3] = 0x10;	/* a seed grant */
	used = vp_fr_decode(&d, in, 4, &done, &m);
	T(used == -EPROTO && strstr(d.err, "byte 2 of the opening is 0x27"),
	  "framed: a seed grant instead of the opening: %s", d.err);
	T(vp_fr_decode(&d, in, 1, &done, &m) == -EPROTO, "framed: the decoder stays failed");
	memset(in, 0, 4);

	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	vp_fr_decode(&d, in, VP_FR_HDR, &done, &m);
	vp_fr_encode(in + VP_FR_HDR, VP_FR_REPORT, 0, 0, NULL, 0);
	used = vp_fr_decode(&d, in + VP_FR_HDR, VP_FR_HDR, &done, &m);
	T(used == -EPROTO && strstr(d.err, "0x8010 is not one a simulator sends"),
	  "framed: a simulator may not send a REPORT: %s", d.err);

	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	vp_fr_encode(in, VP_FR_GRANT, 0, 0, NULL, 0);
	T(vp_fr_decode(&d, in, VP_FR_HDR, &done, &m) == -EPROTO,
	  "framed: vmpace may not send a GRANT: %s", d.err);

	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	vp_fr_encode(in, VP_FR_REPORT, 0x8000, 5, NULL, 0);
	T(vp_fr_decode(&d, in, VP_FR_HDR, &done, &m) == -EPROTO && strstr(d.err, "flags 0x8000"),
	  "framed: undefined flags are refused: %s", d.err);

	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	vp_fr_encode(in, VP_FR_REPORT, 0, 5, "x", 1);
	T(vp_fr_decode(&d, in, VP_FR_HDR, &done, &m) == -EPROTO && !done,
	  "framed: a REPORT with a payload is refused at its header: %s", d.err);

	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	vp_fr_encode(in, VP_FR_ERROR, VP_FR_ERROR_FATAL, 0, big, 8);
	vp_put_be32(in + 4, 0xff000408);	/* far beyond the limit */
	T(vp_fr_decode(&d, in, VP_FR_HDR, &done, &m) == -EPROTO && strstr(d.err, "ERROR with a payload"),
	  "framed: a length beyond the limit is refused before any payload: %s", d.err);

	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	vp_fr_encode(in, VP_FR_ERROR, 0, 0, big, 8 + VP_FR_MAX_TEXT + 1);
	T(vp_fr_decode(&d, in, VP_FR_HDR, &done, &m) == -EPROTO && strstr(d.err, "(8 to 1032)"),
	  "framed: an ERROR text of 1025 bytes is refused: %s", d.err);

	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	memset(big, 'x', VP_FR_MAX_PAYLOAD);
	len = vp_fr_encode(in, VP_FR_ERROR, VP_FR_ERROR_FATAL, 7, big, 8 + VP_FR_MAX_TEXT);
	used = vp_fr_decode(&d, in, len, &done, &m);
	T(used == (long)len && done && m.len == 8 + VP_FR_MAX_TEXT && m.flags == VP_FR_ERROR_FATAL,
	  "framed: an ERROR of the largest size");

	/* frames: the largest, and one byte more */
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	memset(in, 0, VP_FR_HDR);
	vp_fr_decode(&d, in, VP_FR_HDR, &done, &m);
	len = vp_fr_encode(big2, VP_FR_FRAME_TO_GUEST, 0, 99, big, VP_FR_MAX_PAYLOAD);
	used = vp_fr_decode(&d, big2, len, &done, &m);
	T(used == (long)len && done && m.type == VP_FR_FRAME_TO_GUEST &&
	  m.len == VP_FR_FRAME_HDR + 65535 && m.t == 99,
	  "framed: a FRAME_TO_GUEST of 65535 bytes, the largest");
	vp_put_be32(big2 + 4, VP_FR_MAX_PAYLOAD + 1);
	T(vp_fr_decode(&d, big2, VP_FR_HDR, &done, &m) == -EPROTO,
	  "framed: 65536 bytes is refused at the header: %s", d.err);
	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	vp_fr_encode(big2, VP_FR_FRAME_FROM_GUEST, 0, 99, big, VP_FR_FRAME_HDR);
	T(vp_fr_decode(&d, big2, VP_FR_HDR, &done, &m) == -EPROTO,
	  "framed: a frame of 0 bytes is refused: %s", d.err);
	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	vp_fr_encode(big2, VP_FR_DELIVERED, 0, 99, big, VP_FR_DELIVERED_LEN);
	used = vp_fr_decode(&d, big2, VP_FR_HDR + VP_FR_DELIVERED_LEN, &done, &m);
	T(used == VP_FR_HDR + VP_FR_DELIVERED_LEN && done && m.type == VP_FR_DELIVERED,
	  "framed: DELIVERED, 8 bytes");
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	memset(in, 0, VP_FR_HDR);
	vp_fr_decode(&d, in, VP_FR_HDR, &done, &m);
	vp_fr_encode(big2, VP_FR_DELIVERED, 0, 99, big, VP_FR_DELIVERED_LEN);
	T(vp_fr_decode(&d, big2, VP_FR_HDR, &done, &m) == -EPROTO,
	  "framed: a simulator may not send DELIVERED: %s", d.err);

	/* serial bytes: 1 to 4096 per message, each way in its direction */
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	vp_fr_decode(&d, in, VP_FR_HDR, &done, &m);
	len = vp_fr_encode(big2, VP_FR_SERIAL_TO_GUEST, 0, 7, big,
			   VP_FR_FRAME_HDR + VP_FR_MAX_SERIAL);
	used = vp_fr_decode(&d, big2, len, &done, &m);
	T(used == (long)len && done && m.type == VP_FR_SERIAL_TO_GUEST &&
	  m.len == VP_FR_FRAME_HDR + 4096 && m.t == 7,
	  "framed: a SERIAL_TO_GUEST of 4096 bytes, the largest");
	vp_put_be32(big2 + 4, VP_FR_FRAME_HDR + VP_FR_MAX_SERIAL + 1);
	T(vp_fr_decode(&d, big2, VP_FR_HDR, &done, &m) == -EPROTO &&
	  strstr(d.err, "SERIAL_TO_GUEST with a payload of 4105 bytes (9 to 4104)"),
	  "framed: 4097 serial bytes are refused at the header: %s", d.err);
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	vp_fr_decode(&d, in, VP_FR_HDR, &done, &m);
	vp_fr_encode(big2, VP_FR_SERIAL_TO_GUEST, 0, 7, big, VP_FR_FRAME_HDR);
	T(vp_fr_decode(&d, big2, VP_FR_HDR, &done, &m) == -EPROTO,
	  "framed: SERIAL_TO_GUEST without bytes is refused: %s", d.err);
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	vp_fr_decode(&d, in, VP_FR_HDR, &done, &m);
	vp_fr_encode(big2, VP_FR_SERIAL_FROM_GUEST, 0, 7, big, VP_FR_FRAME_HDR + 1);
	T(vp_fr_decode(&d, big2, VP_FR_HDR, &done, &m) == -EPROTO &&
	  strstr(d.err, "0x8030 is not one a simulator sends"),
	  "framed: a simulator may not send SERIAL_FROM_GUEST: %s", d.err);
	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	len = vp_fr_encode(big2, VP_FR_SERIAL_FROM_GUEST, 0, 7, big, VP_FR_FRAME_HDR + 1);
	used = vp_fr_decode(&d, big2, len, &done, &m);
	T(used == (long)len && done && m.type == VP_FR_SERIAL_FROM_GUEST,
	  "framed: SERIAL_FROM_GUEST of 1 byte from vmpace");
	vp_fr_decoder_init(&d, VP_FR_FROM_VMPACE);
	vp_fr_encode(big2, VP_FR_SERIAL_TO_GUEST, 0, 7, big, VP_FR_FRAME_HDR + 1);
	T(vp_fr_decode(&d, big2, VP_FR_HDR, &done, &m) == -EPROTO,
	  "framed: vmpace may not send SERIAL_TO_GUEST: %s", d.err);
}

/* QEMU's option strings as "vmpace --pid" reads them (ports.c) */
static void qemu_args(void)
{
	char *argv[] = { "qemu-system-x86_64", "--netdev",
			 "dgram,id=n0,local.type=unix,local.path=/a,,b,remote.type=unix,"
			 "remote.path=/v", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01",
			 "-chardev", "socket,id=s0,path=/s,server,wait=off", "-serial", "chardev:s0",
			 "-netdev", "type=user,id=u0", "-S", NULL };
	char v[16], small[4];
	const char *o;

	o = vp_qemu_find(argv, "-netdev", "n0");
	T(o == argv[2], "qemu args: --netdev found by its id, '--' spelling too");
	T(o && vp_qemu_opt(o, "type", v, sizeof(v)) && !strcmp(v, "dgram"),
	  "qemu args: a first element without '=' is the type");
	T(o && vp_qemu_opt(o, "local.path", v, sizeof(v)) && !strcmp(v, "/a,b"),
	  "qemu args: ',,' in a value is a comma, not the next option");
	T(o && vp_qemu_opt(o, "remote.path", v, sizeof(v)) && !strcmp(v, "/v"),
	  "qemu args: the option after an escaped comma");
	T(o && !vp_qemu_opt(o, "b", v, sizeof(v)) && !vp_qemu_opt(o, "path", v, sizeof(v)),
	  "qemu args: no key from inside a value, no key that is not there");
	T(o && !vp_qemu_opt(o, "local.path", small, sizeof(small)),
	  "qemu args: a value longer than the buffer is not cut but refused");
	o = vp_qemu_find(argv, "-netdev", "u0");
	T(o && vp_qemu_opt(o, "type", v, sizeof(v)) && !strcmp(v, "user"),
	  "qemu args: type=user as a key too");
	o = vp_qemu_find(argv, "-chardev", "s0");
	T(o && vp_qemu_opt(o, "server", v, sizeof(v)) && vp_qemu_on(v) &&
	  vp_qemu_opt(o, "wait", v, sizeof(v)) && !vp_qemu_on(v),
	  "qemu args: a bare 'server' is on, wait=off is not");
	T(!vp_qemu_find(argv, "-netdev", "n") && !vp_qemu_find(argv, "-chardev", "n0") &&
	  !vp_qemu_find(argv, "-device", "n0"),
	  "qemu args: no match on a prefix of an id, another option, or a netdev= reference");
	T(vp_qemu_uses_id(argv, "netdev", "n0") && !vp_qemu_uses_id(argv, "netdev", "u0") &&
	  vp_qemu_uses_id(argv, "chardev", "s0") && !vp_qemu_uses_id(argv, "netdev", "n"),
	  "qemu args: netdev=n0 and chardev:s0 used, u0 not, no prefix match");
	T(vp_qemu_opt("socket,id=a,path=/a,telnet=off,path=/b,id=b,telnet=on", "path", v,
		      sizeof(v)) && !strcmp(v, "/b") &&
	  vp_qemu_opt("socket,id=a,path=/a,telnet=off,path=/b,id=b,telnet=on", "telnet", v,
		      sizeof(v)) && vp_qemu_on(v) &&
	  vp_qemu_opt("socket,id=a,path=/a,telnet=off,path=/b,id=b,telnet=on", "id", v,
		      sizeof(v)) && !strcmp(v, "a"),
	  "qemu args: a key given twice counts as QEMU counts it (the last, the first id)");
	T(!vp_qemu_opt("dgram-of-a-long-name,id=x", "type", small, sizeof(small)) &&
	  !vp_qemu_opt("path=/x,path=/long/er", "path", small, sizeof(small)),
	  "qemu args: a type, or the last value, longer than the buffer is refused");
	T(vp_qemu_has_arg(argv, "-S") && vp_qemu_has_arg(argv, "-netdev") &&
	  !vp_qemu_has_arg(argv, "-daemonize"), "qemu args: -S, --netdev as -netdev");
}

/* Expects vp_qemu_json(@in) to be @want (NULL: not an option in JSON). */
static void json_is(const char *in, const char *want, const char *what)
{
	char *got = vp_qemu_json(in);
	bool ok = want ? got && !strcmp(got, want) : !got;
	const char *c;

	T(ok, "qemu JSON: %s", what);
	if (!ok) {
		printf("# got: ");
		for (c = got ? got : "(not JSON)"; *c; c++)
			printf((unsigned char)*c < 0x20 ? "\\x%02x" : "%c", *c);
		printf("\n");
	}
	free(got);
}

/* QEMU's options in JSON (-netdev '{"type":"dgram",...}'), as ports.c reads them */
static void qemu_json(void)
{
	char *argv[] = { "qemu", "-netdev",
			 "{ \"type\": \"dgram\", \"id\": \"n0\", \"local\": {\"type\": \"unix\", "
			 "\"path\": \"/q,x\"}, \"remote\": {\"type\":\"unix\",\"path\":\"/v\"} }",
			 "-device", "{\"driver\":\"virtio-net-pci\",\"netdev\":\"n0\"}",
			 "{\"not\":\"an option's\"}", "-append", "x", NULL };
	char **flat, v[16];
	const char *o;

	json_is("{\"type\":\"dgram\",\"id\":\"n0\"}", "type=dgram,id=n0", "keys in order");
	json_is("{\"a\":{\"b\":{\"c\":1}},\"d\":-2.5e3}", "a.b.c=1,d=-2.5e3",
		"nested objects dotted, numbers as written");
	json_is("{\"server\":true,\"wait\":false}", "server=on,wait=off", "true/false are on/off");
	json_is("{\"p\":\"a,b\"}", "p=a,,b", "a comma in a value doubled, as QEMU escapes it");
	json_is("{\"p\":\"\\u002c\\\"\\u00e9\\n\"}", "p=,,\"\xc3\xa9\n",
		"escapes: \\u002c a comma (doubled), \\\", \\u00e9 UTF-8, \\n");
	json_is("{\"l\":[\"x\",{\"y\":1}]}", "l.0=x,l.1.y=1", "arrays as key.N");
	json_is("{}", "", "an empty object is no keys");
	json_is(" \t{ \"a\" : 1 } \n", "a=1", "white space around and inside");
	json_is("dgram,id=n0", NULL, "an option string is not JSON");
	json_is("[1]", NULL, "the top must be an object");
	json_is("{\"a\":null}", NULL, "null is refused");
	json_is("{\"a\":1", NULL, "unterminated object");
	json_is("{\"a\":\"x}", NULL, "unterminated string");
	json_is("{\"a\":1} x", NULL, "garbage after the object");
	json_is("{\"a\":\"\\ud800\"}", NULL, "a surrogate refused");
	json_is("{\"a\":\"\\u0000\"}", NULL, "a NUL refused");
	json_is("{\"a\":\"\\q\"}", NULL, "an unknown escape refused");
	json_is("{\"a\":\"\\u12\"}", NULL, "a short \\u refused");
	json_is("{\"a\":tru}", NULL, "a word that is not true refused");
	json_is("{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
		"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}}}}}}}}}}}", NULL,
		"nested deeper than 16 refused");
	flat = vp_qemu_flatten(argv);
	T(flat != NULL, "qemu JSON: flatten");
	if (!flat)
		return;
	o = vp_qemu_find(flat, "-netdev", "n0");
	T(o && vp_qemu_opt(o, "type", v, sizeof(v)) && !strcmp(v, "dgram") &&
	  vp_qemu_opt(o, "local.path", v, sizeof(v)) && !strcmp(v, "/q,x") &&
	  vp_qemu_opt(o, "remote.path", v, sizeof(v)) && !strcmp(v, "/v"),
	  "qemu JSON: -netdev found by its id, its paths read");
	T(vp_qemu_uses_id(flat, "netdev", "n0"), "qemu JSON: a JSON -device uses netdev n0");
	T(!strcmp(flat[5], argv[5]) && !strcmp(flat[7], "x") && !strcmp(flat[0], "qemu") &&
	  !flat[8], "qemu JSON: an argument that follows no option stays as it is");
	free(flat);
}

/*
 * A running process's command line, as vmpace --pid reads QEMU's: a shell
 * that says it runs (so it has exec'd) and waits for its stdin to close.
 */
static void qemu_cmdline(void)
{
	int in[2], out[2], status;
	char **argv, c;
	pid_t pid;

	if (pipe(in) || pipe(out)) {
		T(0, "qemu cmdline: pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (!pid) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl("/bin/sh", "sh", "-c", "echo; read x", "qemu", "-netdev",
		      "{\"type\":\"dgram\",\"id\":\"n0\",\"local\":{\"path\":\"/q,x\"}}",
		      "", "-S", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	argv = pid > 0 && read(out[0], &c, 1) == 1 ? vp_qemu_cmdline(pid) : NULL;
	T(argv && !strcmp(argv[0], "sh") && !strcmp(argv[2], "echo; read x") &&
	  !strcmp(argv[4], "-netdev") &&
	  !strcmp(argv[5], "type=dgram,id=n0,local.path=/q,,x") && !strcmp(argv[6], "") &&
	  !strcmp(argv[7], "-S") && !argv[8],
	  "qemu cmdline: a process's arguments, an empty one kept, JSON flattened");
	free(argv);
	close(in[1]);
	close(out[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	errno = 0;
	T(!vp_qemu_cmdline(pid) && errno == ENOENT, "qemu cmdline: a process that is gone: ENOENT");
}

/*
 * The simulators' check of a guest clock: readings each known to lie between
 * two simulated times fit one offset, up to rounding, or they do not.
 */
static void clock_fit(void)
{
	/* guest = simulated + 7 654 321.987 us; reads 1 ns to 3 ms after "from" */
	const int64_t c = 7654321987;
	const int64_t from[] = { 1000000, 21000333, 41000999, 61999001, 80000500 };
	const int64_t lat[] = { 100000, 2999999, 1, 640500, 1999 };
	struct clock_bounds b;
	int i;

	clock_bounds_init(&b);
	for (i = 0; i < 5; i++)
		clock_bounds_fit(&b, from[i] + lat[i] + c, from[i], from[i] + lat[i] + 999);
	T(clock_bounds_exact(&b) && b.lo <= 7654322 && b.hi >= 7654321 && b.hi - b.lo <= 2,
	  "clock fit: readings of one offset fit it, rounding aside (lo %lld, hi %lld)",
	  (long long)b.lo, (long long)b.hi);

	clock_bounds_init(&b);
	clock_bounds_fit(&b, from[0] + lat[0] + c, from[0], from[0] + lat[0] + 999);
	T(!clock_bounds_exact(&b), "clock fit: one reading proves nothing");

	/* one line read 3 us before it was handed over (as the guest sees it) */
	clock_bounds_init(&b);
	for (i = 0; i < 4; i++)
		clock_bounds_fit(&b, from[i] + 200 + c, from[i], from[i] + 500);
	clock_bounds_fit(&b, from[4] - 3000 + c, from[4], from[4] + 500);
	T(!clock_bounds_exact(&b), "clock fit: a reading 3 us before its window does not fit");

	/* a guest clock 1 % fast: 0.2 ms over 20 ms, windows of 0.1 ms */
	clock_bounds_init(&b);
	for (i = 0; i < 5; i++)
		clock_bounds_fit(&b, from[i] + from[i] / 100 + c, from[i], from[i] + 100000);
	T(!clock_bounds_exact(&b), "clock fit: a clock 1 %% fast over 80 ms does not fit");
}

int main(void)
{
	const uint8_t us[] = { 0x00, 0x00, 0x27, 0x10, 0xde, 0xad, 0xbe, 0xef };
	const uint8_t ns[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
	struct vp_decoder d;
	uint64_t g = 0, t;
	uint8_t out[8];
	bool done;
	size_t used;
	int i, r;

	vp_decoder_init(&d, VP_PROTO_US32);
	used = vp_decode(&d, us, sizeof(us), &done, &g);
	T(used == 4 && done && g == 10000, "us32: network byte order, one message per call");
	used = vp_decode(&d, us + 4, 4, &done, &g);
	T(used == 4 && done && g == 0xdeadbeef, "us32: the next message follows");

	vp_decoder_init(&d, VP_PROTO_US32);
	for (i = 0; i < 3; i++) {
		vp_decode(&d, us + i, 1, &done, &g);
		if (done)
			break;
	}
	T(!done && vp_decoder_partial(&d), "us32: 3 of 4 bytes are a partial message");
	vp_decode(&d, us + 3, 1, &done, &g);
	T(done && g == 10000 && !vp_decoder_partial(&d), "us32: the 4th byte completes it");

	vp_decoder_init(&d, VP_PROTO_NS64);
	used = vp_decode(&d, ns, 5, &done, &g);
	T(used == 5 && !done, "ns64: 5 of 8 bytes");
	vp_decode(&d, ns + 5, 3, &done, &g);
	T(done && g == 0x0102030405060708ull, "ns64: big-endian 64-bit value");

	r = vp_encode(VP_PROTO_US32, 0x01020304, out);
	T(r == 4 && !memcmp(out, "\x01\x02\x03\x04", 4), "us32: report encoded big-endian");
	r = vp_encode(VP_PROTO_US32, 0x100000000ull, out);
	T(r == -ERANGE, "us32: a report above UINT32_MAX is refused");
	r = vp_encode(VP_PROTO_NS64, 0x0102030405060708ull, out);
	T(r == 8 && !memcmp(out, ns, 8), "ns64: report encoded big-endian");

	/* The guest's pvclock scale: 2445408 kHz is mul 3512680953, shift -1. */
	T(vp_pvclock_ns(2445408000ull, 3512680953u, -1) / 1000 == 1000000,
	  "one second of ticks at 2445408 kHz is 1 s of kvmclock");
	for (i = 0, r = 1; i < 200000; i += 13) {
		static const struct { uint32_t mul; int8_t shift; } sc[] = {
			{ 3512680953u, -1 }, { 2147483648u, 1 }, { 4294967295u, -3 },
			{ 3435973837u, 21 }, { 1000u, -8 },
		};
		int k = i % 5;

		if (vp_pvclock_ticks_ceil(i * 997ull, sc[k].mul, sc[k].shift, &t)) {
			r = 0;
			break;
		}
		/* the fewest ticks: one less falls short */
		if (vp_pvclock_ns(t, sc[k].mul, sc[k].shift) < i * 997ull ||
		    (t && vp_pvclock_ns(t - 1, sc[k].mul, sc[k].shift) >= i * 997ull && i))
			r = 0;
	}
	T(r, "pvclock: the fewest ticks that make a duration, for negative and positive shifts");
	T(vp_pvclock_ticks_ceil(UINT64_MAX, 1, -8, &t) == -ERANGE,
	  "pvclock: ticks that do not fit in 64 bits are refused");
	T(vp_pvclock_ticks_ceil(1000, 0, 0, &t) == -ERANGE, "pvclock: no scale, no conversion");
	T(vp_pvclock_ns(UINT64_MAX, UINT32_MAX, 31) == UINT64_MAX,
	  "pvclock: the largest inputs saturate instead of wrapping");

	framed();
	qemu_args();
	qemu_json();
	qemu_cmdline();
	clock_fit();
	printf("1..%d\n", n);
	return failed != 0;
}
