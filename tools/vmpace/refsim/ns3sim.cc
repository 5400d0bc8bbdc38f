// SPDX-License-Identifier: GPL-2.0
/*
 * ns3sim: two paced QEMU guests connected through an ns-3 network, an
 * example of co-simulation with vmpace and libvmpace (vmpace-proto(7)).
 *
 *   guest A ---- node RA ====== point-to-point ====== node RB ---- guest B
 *   10.0.2.1     10.0.2.254     10.1.1.1   10.1.1.2   10.0.2.253   10.0.2.2
 *
 * Each guest runs under "vmpace run --proto framed --net n0"; its virtio-net
 * NIC is a VmpaceNetDevice (below) on an ns-3 router node, which routes
 * between it and the point-to-point link (DataRate --rate-mbps, one-way
 * delay --delay-us).  The guests' time is ns-3's time: a frame the guest
 * sends, stamped by vmpace at guest time t, enters ns-3 at t + a; a frame
 * ns-3 sends to a guest at ns-3 time t reaches the guest's NIC when its time
 * is t exactly (vmpace stops the guest there).  a (--access-us) is the link
 * between a guest and its router, part of the one-way delay: the channel's
 * own delay is delay - a.  It is the lookahead of this conservative
 * synchronisation: ns-3 runs up to min(guest times) + a, the guests up to
 * there less a margin m (--margin-us, at least the guests' overshoot of a
 * grant), so that no frame from ns-3 is for a guest time already past.
 *
 * The test guests (see the tests' guest init): A (vmpace.ping=N) sends N
 * ICMP echo requests to 10.0.2.2, which B (vmpace.echo=1) answers from its
 * kernel; A times each round trip with its own clock and prints it on its
 * debug console, which ns3sim reads from a file.  The simulated round trip
 * is 2 delay + the serialisation of both frames on the link ((IP length + 2
 * bytes of PPP) * 8 / rate each way).
 *
 * The measured round trips come in phases of --probes (10) each, in the order
 * --phases names them (default "plain"), on the same two guests (one boot):
 *   plain     frames from the guests stamped by vmpace;
 *   stall     the same, with --stall-us (20000) of host time burnt between
 *             rounds (a slow simulator): guest time must not notice;
 *   boundary  frames stamped with the end of the quantum they came in (what
 *             a simulator without vmpace's stamps does, like the adevs
 *             library), to compare; only the stamps: the frames to the
 *             guests are still handed over at their time by vmpace (netsim
 *             --boundary also hands them over at quantum boundaries).
 * Guest A's kernel command line must say vmpace.ping=<probes x phases>.
 *
 * usage: ns3sim [options] -- QEMU-COMMAND-LINE-A -- QEMU-COMMAND-LINE-B
 *   --vmpace PATH  --delay-us N (5000)  --rate-mbps N (10)  --access-us N (1000)
 *   --margin-us N (500)  --boot-quantum-us N (20000)  --phases LIST
 *   --probes N  --stall-us N  --host-limit-s N (300: then the summaries, FAILED)
 * Prints one line per round trip and a summary per phase, ends with PASS or
 * FAILED; exit status 0 if in every phase every round trip came back, none
 * shorter than the simulated one (on A's clock, by the program and by its
 * NIC's timestamps, and in the simulation's part), every frame from ns-3
 * reached its guest no earlier than its time (at it, or LATE if that guest
 * had already passed it: counted and said) with the NIC's interrupt; 1 if
 * not; 2 on errors.
 */
#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <getopt.h>
#include <sys/wait.h>
#include <string>
#include <unistd.h>
#include <vector>

#include <ns3/arp-cache.h>
#include <ns3/boolean.h>
#include <ns3/channel.h>
#include <ns3/data-rate.h>
#include <ns3/ethernet-header.h>
#include <ns3/global-value.h>
#include <ns3/internet-stack-helper.h>
#include <ns3/ipv4-address-helper.h>
#include <ns3/ipv4-interface.h>
#include <ns3/ipv4-l3-protocol.h>
#include <ns3/ipv4-static-routing-helper.h>
#include <ns3/mac48-address.h>
#include <ns3/net-device.h>
#include <ns3/node.h>
#include <ns3/packet.h>
#include <ns3/point-to-point-helper.h>
#include <ns3/simulator.h>
#include <ns3/string.h>

#include "libvmpace.h"

using namespace ns3;

static struct {
	const char *vmpace = "vmpace";
	uint64_t delay_ns = 5000000, access_ns = 1000000, margin_ns = 500000;
	uint64_t rate_bps = 10000000, boot_quantum_ns = 20000000, stall_us = 20000;
	long probes = 10;
} opt;

/*
 * The measured round trips come in phases of --probes each: "plain"
 * (vmpace's stamps), "stall" (the same, with --stall-us of host time burnt
 * between rounds) and "boundary" (frames stamped at the end of their
 * quantum), in the order --phases gives; one boot of the guests for all.
 */
struct Phase {
	std::string name;
	bool boundary = false;
	uint64_t stall_us = 0;
	std::vector<int64_t> rtt_prog, rtt_wire, err_prog, err_wire, err_net, guest_part, overshoot;
	long lost = 0, incomplete = 0, late = 0, deferred = 0, noirq = 0, early = 0, refused = 0;
	uint64_t max_lag = 0, start_sim = 0, start_host = 0, end_sim = 0, end_host = 0;
};

static std::vector<Phase> phases;
static size_t ph;		/* the current phase */

static void cleanup();

[[noreturn]] static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	fputs("ns3sim: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	cleanup();
	exit(2);
}

class VmpaceNetDevice;

/* One guest: its vmpace session, its debug console, its ns-3 device. */
struct Guest {
	explicit Guest(const char *n) : name(n) {}
	const char *name;
	struct vmp *v = nullptr;
	int dbg = -1;
	std::string dbg_path, line;
	Ptr<VmpaceNetDevice> dev;
	bool ready = false;
	/* frames ns-3 sent, by id: their time and probe (ICMP sequence, or -1) */
	struct Sent {
		uint64_t t = 0;
		long seq = -1;
	};
	std::vector<Sent> sent;
	long nr_frames_in = 0, nr_dropped_boot = 0, nr_dropped_dev = 0;
};

static Guest guests[2] = { Guest("A"), Guest("B") };
static bool done;
static long expect_probes;
/*
 * Each probe's frames, by ICMP sequence number: the stamp of A's request
 * (vmpace's, whatever the phase) and when it was handed to B; the stamp of
 * B's reply and when it was handed to A; the IP lengths of both.
 */
struct Probe {
	uint64_t a_out = 0, b_in = 0, b_out = 0, a_in = 0;
	uint64_t req_len = 0, rep_len = 0;
};

static std::vector<Probe> probes;

static Probe *probe(long seq)
{
	if (seq < 0 || seq > 65535)
		return nullptr;
	if ((size_t)seq >= probes.size())
		probes.resize(seq + 1);
	return &probes[seq];
}

/*
 * An Ethernet frame carrying an ICMP echo request (@type 8) or reply (0):
 * its sequence number and IP length, else -1.
 */
static long icmp_seq(const uint8_t *f, size_t len, int type, uint64_t *ip_len)
{
	size_t ihl;

	if (len < 14 + 20 || (f[12] << 8 | f[13]) != 0x0800 || (f[14] >> 4) != 4)
		return -1;
	ihl = (f[14] & 0xf) * 4;
	if (ihl < 20 || len < 14 + ihl + 8 || f[14 + 9] != 1 || f[14 + ihl] != type)
		return -1;
	*ip_len = f[16] << 8 | f[17];
	return f[14 + ihl + 6] << 8 | f[14 + ihl + 7];
}

/*
 * An Ethernet NIC whose other end is a paced guest's virtio-net: frames from
 * ns-3 go to vmpace at the current simulation time, frames from the guest
 * come in through Receive(), scheduled by the main loop.
 */
class VmpaceNetDevice : public NetDevice {
public:
	static TypeId GetTypeId()
	{
		static TypeId tid = TypeId("VmpaceNetDevice")
			.SetParent<NetDevice>()
			.SetGroupName("Vmpace");
		return tid;
	}

	void SetGuest(Guest *g) { m_guest = g; }

	/* A frame from the guest, at its time in ns-3. */
	void Receive(Ptr<Packet> p)
	{
		EthernetHeader h(false);
		Mac48Address dst;
		PacketType type;

		if (p->GetSize() < h.GetSerializedSize()) {
			m_dropped++;
			return;
		}
		p->RemoveHeader(h);
		if (h.GetLengthType() <= 1500) {
			m_dropped++;	/* 802.3 length: not for us */
			return;
		}
		dst = h.GetDestination();
		if (dst.IsBroadcast())
			type = PACKET_BROADCAST;
		else if (dst.IsGroup())
			type = PACKET_MULTICAST;
		else if (dst == m_addr)
			type = PACKET_HOST;
		else
			type = PACKET_OTHERHOST;
		if (!m_promisc.IsNull())
			m_promisc(this, p->Copy(), h.GetLengthType(), h.GetSource(), dst, type);
		if (type != PACKET_OTHERHOST)
			m_rx(this, p, h.GetLengthType(), h.GetSource());
		else
			m_dropped++;
	}

	/* frames from the guest it did not pass up: short, 802.3, for another host */
	long Dropped() const { return m_dropped; }

	void SetIfIndex(const uint32_t index) override { m_ifIndex = index; }
	uint32_t GetIfIndex() const override { return m_ifIndex; }
	Ptr<Channel> GetChannel() const override { return nullptr; }
	void SetAddress(Address a) override { m_addr = Mac48Address::ConvertFrom(a); }
	Address GetAddress() const override { return m_addr; }
	bool SetMtu(const uint16_t mtu) override { return mtu == 1500; }
	uint16_t GetMtu() const override { return 1500; }
	bool IsLinkUp() const override { return true; }
	/* never fires: the link is always up */
	void AddLinkChangeCallback(Callback<void>) override {}
	bool IsBroadcast() const override { return true; }
	Address GetBroadcast() const override { return Mac48Address::GetBroadcast(); }
	bool IsMulticast() const override { return true; }
	Address GetMulticast(Ipv4Address g) const override { return Mac48Address::GetMulticast(g); }
	Address GetMulticast(Ipv6Address g) const override { return Mac48Address::GetMulticast(g); }
	bool IsBridge() const override { return false; }
	bool IsPointToPoint() const override { return false; }
	bool Send(Ptr<Packet> p, const Address &dst, uint16_t proto) override
	{
		return SendFrom(p, m_addr, dst, proto);
	}
	bool SendFrom(Ptr<Packet> p, const Address &src, const Address &dst, uint16_t proto) override;
	Ptr<Node> GetNode() const override { return m_node; }
	void SetNode(Ptr<Node> node) override { m_node = node; }
	bool NeedsArp() const override { return true; }
	void SetReceiveCallback(ReceiveCallback cb) override { m_rx = cb; }
	void SetPromiscReceiveCallback(PromiscReceiveCallback cb) override { m_promisc = cb; }
	bool SupportsSendFrom() const override { return true; }

protected:
	/* breaks the node <-> device reference cycle */
	void DoDispose() override
	{
		m_node = nullptr;
		m_rx = MakeNullCallback<bool, Ptr<NetDevice>, Ptr<const Packet>, uint16_t,
					const Address &>();
		m_promisc = MakeNullCallback<bool, Ptr<NetDevice>, Ptr<const Packet>, uint16_t,
					     const Address &, const Address &, PacketType>();
		m_guest = nullptr;
		NetDevice::DoDispose();
	}

private:
	long m_dropped = 0;
	Guest *m_guest = nullptr;
	Ptr<Node> m_node;
	uint32_t m_ifIndex = 0;
	Mac48Address m_addr;
	ReceiveCallback m_rx;
	PromiscReceiveCallback m_promisc;
};

/* To the guest, for its NIC when its time is now (no grant is outstanding). */
bool VmpaceNetDevice::SendFrom(Ptr<Packet> p, const Address &src, const Address &dst,
			       uint16_t proto)
{
	EthernetHeader h(false);
	uint64_t t = Simulator::Now().GetNanoSeconds();
	uint32_t id;
	int r;

	h.SetSource(Mac48Address::ConvertFrom(src));
	h.SetDestination(Mac48Address::ConvertFrom(dst));
	h.SetLengthType(proto);
	p = p->Copy();
	p->AddHeader(h);
	std::vector<uint8_t> buf(p->GetSize());
	p->CopyData(buf.data(), buf.size());
	r = vmp_send_frame(m_guest->v, 0, t, buf.data(), buf.size(), &id);
	if (r)
		die("guest %s: frame to the guest: %s", m_guest->name, vmp_errmsg(m_guest->v));
	if (id >= m_guest->sent.size())
		m_guest->sent.resize(id + 1);
	m_guest->sent[id].t = t;
	/* A's requests to B, B's replies to A */
	uint64_t l;
	m_guest->sent[id].seq = icmp_seq(buf.data(), buf.size(), m_guest == &guests[1] ? 8 : 0, &l);
	return true;
}

/*
 * Ends both sessions (vmpace then ends its QEMU) and removes the debug
 * console files; the vmpace exit statuses that are not 0 are said.
 * Returns true if both vmpace processes exited with 0.
 */
static bool close_guests(int timeout_ms)
{
	bool ok = true;
	int status;

	for (Guest &g : guests) {
		if (g.v) {
			if (vmp_close(g.v, timeout_ms, &status) ||
			    !WIFEXITED(status) || WEXITSTATUS(status)) {
				fprintf(stderr, "ns3sim: guest %s: vmpace ended badly: %s\n", g.name,
					*vmp_errmsg(g.v) ? vmp_errmsg(g.v) : "(no message)");
				ok = false;
			}
			vmp_free(g.v);
			g.v = nullptr;
		}
		if (!g.dbg_path.empty())
			unlink(g.dbg_path.c_str());
		g.dbg_path.clear();
	}
	return ok;
}

static void cleanup()
{
	close_guests(5000);
}

static uint64_t host_ns()
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}

/* 2 delay + both frames' serialisation on the link (IP length + 2 bytes of PPP) */
static int64_t sim_rtt(const Probe &p)
{
	return 2 * opt.delay_ns + (p.req_len + 2 + p.rep_len + 2) * 8 * 1000000000ull /
	       opt.rate_bps;
}

/* Phase ph starts now. */
static void start_phase()
{
	Phase &p = phases[ph];

	p.start_sim = std::min(vmp_now(guests[0].v), vmp_now(guests[1].v));
	p.start_host = host_ns();
	printf("ns3sim: phase %s: %s stamps, %" PRIu64 " us of host time between rounds\n",
	       p.name.c_str(), p.boundary ? "quantum-boundary" : "vmpace's", p.stall_us);
}

/* The phase of probe @seq (1, 2, ...; the last one for any later probe). */
static Phase &phase_of(long seq)
{
	size_t i = seq > 0 ? (size_t)((seq - 1) / opt.probes) : 0;

	return phases[std::min(i, phases.size() - 1)];
}

/* After probe @seq: the next phase once this one has had its probes. */
static void next_phase(long seq)
{
	while (ph + 1 < phases.size() && seq >= opt.probes * (long)(ph + 1)) {
		phases[ph].end_sim = std::min(vmp_now(guests[0].v), vmp_now(guests[1].v));
		phases[ph].end_host = host_ns();
		ph++;
		start_phase();
	}
}

static void on_line(Guest &g, const std::string &l)
{
	long seq;
	long long prog, wire = 0;

	if (!l.compare(0, 18, "vmpace-guest-ready")) {
		g.ready = true;
		if (&g == &guests[0] &&
		    (sscanf(l.c_str(), "vmpace-guest-ready ping=%ld", &seq) != 1 || seq != expect_probes))
			die("guest A says '%s': %zu phases of %ld probes need vmpace.ping=%ld",
			    l.c_str(), phases.size(), opt.probes, expect_probes);
		printf("guest %s: %s\n", g.name, l.c_str());
	} else if (&g == &guests[0] &&
		   sscanf(l.c_str(), "vmpace-guest-rtt %ld %lld %lld", &seq, &prog, &wire) >= 2) {
		Probe *pr = probe(seq);
		Phase &p = phase_of(seq);

		if (!pr || !pr->a_out || !pr->b_in || !pr->b_out || !pr->a_in) {
			printf("%s %3ld: %9.1f us between A's NIC timestamps, %9.1f us for A's "
			       "program; ns3sim did not see all four of its frames\n",
			       p.name.c_str(), seq, wire / 1e3, prog / 1e3);
			p.incomplete++;
			next_phase(seq);
			return;
		}
		/*
		 * In simulated time: A's request stamped -> B got it -> B's reply
		 * stamped -> A got it.  Without B's turnaround that is the
		 * simulated round trip, plus how late the two stops were (and
		 * the quantum-boundary stamps' delay in that phase).
		 */
		int64_t sim = sim_rtt(*pr);
		int64_t net = (int64_t)pr->a_in - (int64_t)pr->a_out;
		int64_t turn = (int64_t)pr->b_out - (int64_t)pr->b_in;

		p.rtt_prog.push_back(prog);
		p.err_prog.push_back(prog - sim);
		p.err_net.push_back(net - turn - sim);
		if (wire > 0) {
			p.rtt_wire.push_back(wire);
			p.err_wire.push_back(wire - sim);
			p.guest_part.push_back(wire - net);
		}
		printf("%s %3ld: %9.1f us between A's NIC timestamps, %9.1f us for A's program "
		       "(simulated %.1f us); stamp to delivery %.1f us, B's turnaround %.1f us\n",
		       p.name.c_str(), seq, wire / 1e3, prog / 1e3, sim / 1e3, net / 1e3,
		       turn / 1e3);
		next_phase(seq);
	} else if (!l.compare(0, 17, "vmpace-guest-warm")) {
		printf("guest %s: %s (the path is up: the measured round trips follow)\n", g.name,
		       l.c_str());
	} else if (&g == &guests[0] && sscanf(l.c_str(), "vmpace-guest-rtt-lost %ld", &seq) == 1) {
		phase_of(seq).lost++;
		printf("guest %s: %s\n", g.name, l.c_str());
		next_phase(seq);
	} else if (&g == &guests[0] && !l.compare(0, 21, "vmpace-guest-udp-done")) {
		done = true;
	} else if (!l.compare(0, 18, "vmpace-guest-error")) {
		fprintf(stderr, "ns3sim: guest %s says: %s\n", g.name, l.c_str());
	}
}

/* Lines the guest wrote to its debug console (a file) so far. */
static void read_lines(Guest &g)
{
	char buf[4096];
	ssize_t n;
	size_t nl;

	while ((n = read(g.dbg, buf, sizeof(buf))) > 0) {
		g.line.append(buf, n);
		while ((nl = g.line.find('\n')) != std::string::npos) {
			on_line(g, g.line.substr(0, nl));
			g.line.erase(0, nl + 1);
		}
		if (g.line.size() > 65536)
			g.line.clear();
	}
}

/* What vmpace read during the quantum that ended at vmp_now(). */
static void events(Guest &g, bool network)
{
	struct vmp_event ev;

	while (!vmp_next_event(g.v, &ev)) {
		switch (ev.type) {
		case VMP_EV_FRAME: {
			/* vmpace's stamp, or in the boundary phase the quantum's end */
			uint64_t t = (phases[ph].boundary ? vmp_now(g.v) : ev.t) + opt.access_ns;
			Time now = Simulator::Now();
			uint64_t len;
			long seq;

			if (!network) {
				g.nr_dropped_boot++;
				break;
			}
			/* ev.t >= the previous report >= ns-3's time - a: never in the past */
			if (NanoSeconds(t) < now)
				die("guest %s: a frame at %" PRIu64 " ns, ns-3 is at %" PRId64 " ns",
				    g.name, t, (int64_t)now.GetNanoSeconds());
			seq = icmp_seq((const uint8_t *)ev.data, ev.len, &g == &guests[0] ? 8 : 0, &len);
			if (Probe *pr = probe(seq)) {
				(&g == &guests[0] ? pr->a_out : pr->b_out) = ev.t;
				(&g == &guests[0] ? pr->req_len : pr->rep_len) = len;
			}
			Ptr<Packet> p = Create<Packet>((const uint8_t *)ev.data, ev.len);
			Simulator::ScheduleWithContext(g.dev->GetNode()->GetId(), NanoSeconds(t) - now,
						       &VmpaceNetDevice::Receive, g.dev, p);
			g.nr_frames_in++;
			break;
		}
		case VMP_EV_DELIVERED: {
			Phase &p = phases[ph];

			if (ev.status == VMP_DELIVERED_LATE)
				p.late++;
			if (ev.status == VMP_DELIVERED_DEFERRED)
				p.deferred++;
			if (!(ev.flags & VMP_DELIVERED_IRQ))
				p.noirq++;
			if (ev.id < g.sent.size()) {
				const Guest::Sent &f = g.sent[ev.id];

				if (Probe *pr = probe(f.seq))
					(&g == &guests[0] ? pr->a_in : pr->b_in) = ev.t;
				if (ev.t < f.t)
					p.early++;
				else
					p.max_lag = std::max(p.max_lag, ev.t - f.t);
			}
			break;
		}
		case VMP_EV_REJECTED:
			fprintf(stderr, "ns3sim: guest %s: vmpace refused frame %u: %s\n", g.name,
				ev.id, (const char *)ev.data);
			phases[ph].refused++;
			break;
		case VMP_EV_SERIAL:	/* ns3sim's vmpaces have no serial ports */
			break;
		}
	}
}

/*
 * Runs each guest that is before @until up to it, both at once; @network:
 * frames from the guests go into ns-3 (else, while booting, they are dropped).
 */
static void run_guests(uint64_t until, bool network)
{
	bool granted[2] = { false, false };
	uint64_t stall = network ? phases[ph].stall_us : 0;
	struct timespec st = { (time_t)(stall / 1000000), (long)(stall % 1000000) * 1000 };
	int i;

	for (i = 0; i < 2; i++) {
		if (vmp_now(guests[i].v) >= until)
			continue;
		if (vmp_grant_until(guests[i].v, until))
			die("guest %s: grant: %s", guests[i].name, vmp_errmsg(guests[i].v));
		granted[i] = true;
	}
	for (i = 0; i < 2; i++) {
		if (!granted[i])
			continue;
		if (vmp_await(guests[i].v, NULL, 120000))
			die("guest %s: %s", guests[i].name, vmp_errmsg(guests[i].v));
		if (network)
			phases[ph].overshoot.push_back(vmp_now(guests[i].v) - until);
	}
	for (i = 0; i < 2; i++) {
		events(guests[i], network);
		read_lines(guests[i]);
	}
	while (stall && nanosleep(&st, &st) && errno == EINTR)
		;
}

static uint64_t now_min()
{
	return std::min(vmp_now(guests[0].v), vmp_now(guests[1].v));
}

static void spawn(Guest &g, std::vector<const char *> qemu, const char *mac)
{
	char path[] = "/tmp/ns3sim-debugcon-XXXXXX";
	std::string chardev, nic;
	int fd;

	fd = mkstemp(path);
	if (fd < 0)
		die("mkstemp: %s", strerror(errno));
	close(fd);
	g.dbg_path = path;
	g.dbg = open(path, O_RDONLY | O_CLOEXEC);
	if (g.dbg < 0)
		die("%s: %s", path, strerror(errno));
	chardev = "file,id=ns3sim-dbg,path=" + g.dbg_path;
	nic = std::string("virtio-net-pci,netdev=n0,mac=") + mac;
	std::vector<const char *> args = { opt.vmpace, "run", "--sync-fd", "3", "--proto",
					   "framed", "--net", "n0", "--" };
	args.insert(args.end(), qemu.begin(), qemu.end());
	for (const char *a : { "-device", nic.c_str(), "-chardev", chardev.c_str(), "-device",
			       "isa-debugcon,iobase=0xe9,chardev=ns3sim-dbg" })
		args.push_back(a);
	args.push_back(nullptr);
	if (vmp_spawn(&g.v, VMP_PROTO_FRAMED, args.data(), NULL))
		die("guest %s: %s", g.name, g.v ? vmp_errmsg(g.v) : "out of memory");
}

/* The guest's NIC on a new router node, with a static ARP entry for the guest. */
static Ptr<Node> router(Guest &g, const char *mac, const char *guest_ip, const char *guest_mac,
			const char *ip)
{
	Ptr<Node> n = CreateObject<Node>();
	Ipv4AddressHelper addr;

	g.dev = CreateObject<VmpaceNetDevice>();
	g.dev->SetGuest(&g);
	g.dev->SetAddress(Mac48Address(mac));
	n->AddDevice(g.dev);
	InternetStackHelper stack;
	stack.SetIpv6StackInstall(false);
	stack.Install(n);
	addr.SetBase("10.0.2.0", "255.255.255.0", ip);
	addr.Assign(NetDeviceContainer(g.dev));
	Ptr<Ipv4L3Protocol> l3 = n->GetObject<Ipv4L3Protocol>();
	ArpCache::Entry *e = l3->GetInterface(l3->GetInterfaceForDevice(g.dev))->GetArpCache()
				->Add(Ipv4Address(guest_ip));
	e->SetMacAddress(Mac48Address(guest_mac));
	e->MarkPermanent();
	return n;
}

static int64_t percentile(std::vector<int64_t> v, double p)
{
	if (v.empty())
		return 0;
	std::sort(v.begin(), v.end());
	return v[std::min(v.size() - 1, (size_t)(p * (v.size() - 1) + 0.5))];
}

/* Round trips and their errors against the simulated ones, per probe. */
static void summary(const Phase &p, const char *what, const std::vector<int64_t> &rtt,
		    const std::vector<int64_t> &err)
{
	if (rtt.empty())
		return;
	printf("ns3sim: %s: %zu round trips, %s: median %.1f us; error min %+.1f median %+.1f "
	       "max %+.1f us\n", p.name.c_str(), rtt.size(), what, percentile(rtt, 0.5) / 1e3,
	       percentile(err, 0) / 1e3, percentile(err, 0.5) / 1e3, percentile(err, 1) / 1e3);
}

/* A phase's summary; true if it passed. */
static bool report(const Phase &p, int64_t sim)
{
	int64_t p99 = percentile(p.overshoot, 0.99), bound = std::min(sim / 100, 2 * p99);
	const char *n = p.name.c_str();
	long within = 0;
	bool ok;

	printf("ns3sim: %s: %s stamps, %" PRIu64 " us of host time between rounds: the round "
	       "trips took %.3f s of simulated time, %.3f s of host time\n", n,
	       p.boundary ? "quantum-boundary" : "vmpace's", p.stall_us,
	       (p.end_sim - p.start_sim) / 1e9, (p.end_host - p.start_host) / 1e9);
	summary(p, "A's NIC timestamps", p.rtt_wire, p.err_wire);
	summary(p, "A's program", p.rtt_prog, p.err_prog);
	if (!p.rtt_prog.empty()) {
		printf("ns3sim: %s: the simulation's part (A's request stamped to B's reply handed "
		       "to A, less B's turnaround) exceeds the simulated round trip by min %+.1f "
		       "median %+.1f max %+.1f us (how late the two stops were%s)\n", n,
		       percentile(p.err_net, 0) / 1e3, percentile(p.err_net, 0.5) / 1e3,
		       percentile(p.err_net, 1) / 1e3,
		       p.boundary ? ", and the quantum-boundary stamps" : "");
		printf("ns3sim: %s: guest A's part (its NIC round trip less the time from its "
		       "request's stamp to its reply's hand-over): min %.1f median %.1f max %.1f "
		       "us\n", n, percentile(p.guest_part, 0) / 1e3,
		       percentile(p.guest_part, 0.5) / 1e3, percentile(p.guest_part, 1) / 1e3);
	}
	printf("ns3sim: %s: grants overshot by median %.1f us, p99 %.1f us, max %.1f us (%zu "
	       "quanta)\n", n, percentile(p.overshoot, 0.5) / 1e3, p99 / 1e3,
	       percentile(p.overshoot, 1) / 1e3, p.overshoot.size());
	for (int64_t e : p.err_wire)
		within += e >= -bound && e <= bound;
	printf("ns3sim: %s: %ld of %zu round trips (NIC timestamps) within 1 %% of the simulated "
	       "one and 2 x the overshoot p99 (+-%.1f us)\n", n, within, p.err_wire.size(),
	       bound / 1e3);
	printf("ns3sim: %s: frames to the guests: %ld late, %ld deferred, %ld without an "
	       "interrupt, %ld early, %ld refused; handed over at most %.1f us after their time\n",
	       n, p.late, p.deferred, p.noirq, p.early, p.refused, p.max_lag / 1e3);
	if (p.late)
		printf("ns3sim: %s: %ld frame(s) to a guest LATE: that guest had overshot its grant "
		       "by more than the margin when ns-3 sent them; vmpace delivered them at once "
		       "and said so\n", n, p.late);
	if (p.incomplete)
		printf("ns3sim: %s: %ld round trip(s) whose frames ns3sim did not all see\n", n,
		       p.incomplete);
	ok = (long)p.rtt_prog.size() == opt.probes && !p.lost && !p.incomplete &&
	     p.rtt_wire.size() == p.rtt_prog.size() && percentile(p.err_wire, 0) >= 0 &&
	     percentile(p.err_prog, 0) >= 0 && percentile(p.err_net, 0) >= 0 && !p.deferred &&
	     !p.noirq && !p.early && !p.refused;
	printf("ns3sim: %s: %s\n", n, ok ? "every round trip came back, none shorter than the "
	       "simulated one, every frame from ns-3 reached its guest no earlier than its time, "
	       "with an interrupt" : "FAILED");
	return ok;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vmpace", required_argument, NULL, 'v' },
		{ "delay-us", required_argument, NULL, 'd' },
		{ "rate-mbps", required_argument, NULL, 'r' },
		{ "access-us", required_argument, NULL, 'a' },
		{ "margin-us", required_argument, NULL, 'm' },
		{ "boot-quantum-us", required_argument, NULL, 'b' },
		{ "stall-us", required_argument, NULL, 's' },
		{ "phases", required_argument, NULL, 'p' },
		{ "probes", required_argument, NULL, 'n' },
		{ "host-limit-s", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	std::vector<const char *> qemu[2];
	std::string list = "plain", name;
	uint64_t limit, horizon, host_limit = 300, host_end;
	int64_t sim = 0;
	int c, i, k;
	size_t pos;
	bool ok;

	setvbuf(stdout, NULL, _IOLBF, 0);

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'v': opt.vmpace = optarg; break;
		case 'd': opt.delay_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'r': opt.rate_bps = strtoull(optarg, NULL, 0) * 1000000; break;
		case 'a': opt.access_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'm': opt.margin_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'b': opt.boot_quantum_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 's': opt.stall_us = strtoull(optarg, NULL, 0); break;
		case 'p': list = optarg; break;
		case 'n': opt.probes = strtol(optarg, NULL, 0); break;
		case 'H': host_limit = strtoull(optarg, NULL, 0); break;
		default: return 2;
		}
	}
	for (i = 0, k = optind; k < argc; k++) {
		if (!strcmp(argv[k], "--")) {
			i++;
			continue;
		}
		if (i < 2)
			qemu[i].push_back(argv[k]);
	}
	for (pos = 0; pos <= list.size(); pos += name.size() + 1) {
		Phase p;

		name = list.substr(pos, list.find(',', pos) - pos);
		p.name = name;
		p.boundary = name == "boundary";
		p.stall_us = name == "stall" ? opt.stall_us : 0;
		if (name != "plain" && name != "stall" && name != "boundary")
			die("unknown phase '%s' (plain, stall, boundary)", name.c_str());
		phases.push_back(p);
	}
	expect_probes = opt.probes * phases.size();
	if (i != 1 || qemu[0].empty() || qemu[1].empty() || !opt.rate_bps || opt.probes <= 0 ||
	    !opt.boot_quantum_ns || opt.margin_ns >= opt.access_ns ||
	    opt.access_ns > opt.delay_ns) {
		fprintf(stderr, "usage: ns3sim [options] -- QEMU-COMMAND-LINE-A -- QEMU-COMMAND-LINE-B\n"
			"  (--margin-us < --access-us <= --delay-us, --rate-mbps > 0, --probes > 0)\n");
		return 2;
	}

	/* ns-3 forwards the guests' IPv4 packets: their header checksums must be right */
	GlobalValue::Bind("ChecksumEnabled", BooleanValue(true));
	Ptr<Node> ra = router(guests[0], "02:00:00:00:00:02", "10.0.2.1", "52:54:00:00:00:0a",
			      "0.0.0.254");
	Ptr<Node> rb = router(guests[1], "02:00:00:00:00:03", "10.0.2.2", "52:54:00:00:00:0b",
			      "0.0.0.253");
	PointToPointHelper p2p;
	p2p.SetDeviceAttribute("DataRate", DataRateValue(DataRate(opt.rate_bps)));
	p2p.SetChannelAttribute("Delay", TimeValue(NanoSeconds(opt.delay_ns - opt.access_ns)));
	NetDeviceContainer link = p2p.Install(ra, rb);
	Ipv4AddressHelper addr;
	addr.SetBase("10.1.1.0", "255.255.255.0");
	addr.Assign(link);
	Ipv4StaticRoutingHelper srh;
	srh.GetStaticRouting(ra->GetObject<Ipv4>())->AddHostRouteTo(
		Ipv4Address("10.0.2.2"), Ipv4Address("10.1.1.2"),
		ra->GetObject<Ipv4>()->GetInterfaceForDevice(link.Get(0)));
	srh.GetStaticRouting(rb->GetObject<Ipv4>())->AddHostRouteTo(
		Ipv4Address("10.0.2.1"), Ipv4Address("10.1.1.1"),
		rb->GetObject<Ipv4>()->GetInterfaceForDevice(link.Get(1)));

	spawn(guests[0], qemu[0], "52:54:00:00:00:0a");
	spawn(guests[1], qemu[1], "52:54:00:00:00:0b");
	printf("ns3sim: guest A - router - %" PRIu64 " Mbit/s, %.1f ms - router - guest B; "
	       "access %.1f ms (lookahead), margin %.1f ms; phases %s of %ld probes\n",
	       opt.rate_bps / 1000000, opt.delay_ns / 1e6, opt.access_ns / 1e6,
	       opt.margin_ns / 1e6, list.c_str(), opt.probes);

	/* boot, until both test programs are up: 120 s of guest time at most */
	for (limit = 120000000000ull; !guests[0].ready || !guests[1].ready; ) {
		run_guests(now_min() + opt.boot_quantum_ns, false);
		if (now_min() > limit)
			die("the guests did not come up in %.0f s of simulated time (A %s, B %s)",
			    limit / 1e9, guests[0].ready ? "up" : "not up",
			    guests[1].ready ? "up" : "not up");
	}
	/* ns-3 starts where the guests are */
	horizon = now_min() + opt.access_ns;
	Simulator::Stop(NanoSeconds(horizon));
	Simulator::Run();
	printf("ns3sim: both guests up at %.3f s of simulated time\n", horizon / 1e9);
	start_phase();

	/*
	 * The round trips: 10 s of simulated time per phase at most, and
	 * --host-limit-s (300) of host time for all (a slow run ends with its
	 * summaries, not as a test's timeout).
	 */
	host_end = host_ns() + host_limit * 1000000000ull;
	for (limit = horizon + phases.size() * 10000000000ull;
	     !done && now_min() < limit && host_ns() < host_end; ) {
		run_guests(horizon - opt.margin_ns, true);
		horizon = now_min() + opt.access_ns;
		Simulator::Stop(NanoSeconds(horizon) - Simulator::Now());
		Simulator::Run();
	}
	if (!done)
		printf("ns3sim: guest A did not finish its round trips (%.3f s of simulated time, "
		       "%.1f s of host time): FAILED\n", (now_min() - phases[0].start_sim) / 1e9,
		       (host_ns() - phases[0].start_host) / 1e9);
	phases[ph].end_sim = now_min();
	phases[ph].end_host = host_ns();
	ok = close_guests(15000);
	for (Guest &g : guests)
		if (g.dev)
			g.nr_dropped_dev = g.dev->Dropped();
	Simulator::Destroy();

	for (const Probe &p : probes)
		if (p.req_len && p.rep_len) {
			sim = sim_rtt(p);
			printf("ns3sim: simulated round trip %.1f us = 2 x %.1f us + serialisation "
			       "of %" PRIu64 " + %" PRIu64 " bytes at %" PRIu64 " Mbit/s (the first probe)\n",
			       sim / 1e3, opt.delay_ns / 1e3, p.req_len + 2, p.rep_len + 2,
			       opt.rate_bps / 1000000);
			break;
		}
	printf("ns3sim: frames from the guests: A %ld, B %ld (%ld, %ld while booting, dropped; "
	       "%ld, %ld not passed up by the device: short, 802.3, for another host)\n",
	       guests[0].nr_frames_in, guests[1].nr_frames_in, guests[0].nr_dropped_boot,
	       guests[1].nr_dropped_boot, guests[0].nr_dropped_dev, guests[1].nr_dropped_dev);
	ok &= done;
	for (const Phase &p : phases)
		ok &= report(p, sim);
	printf("ns3sim: %s\n", ok ? "PASS" : "FAILED");
	return ok ? 0 : 1;
}
