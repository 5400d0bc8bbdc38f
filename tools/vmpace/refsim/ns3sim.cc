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
 *             library), to compare.
 * Guest A's kernel command line must say vmpace.ping=<probes x phases>.
 *
 * usage: ns3sim [options] -- QEMU-COMMAND-LINE-A -- QEMU-COMMAND-LINE-B
 *   --vmpace PATH  --delay-us N (5000)  --rate-mbps N (10)  --access-us N (1000)
 *   --margin-us N (500)  --boot-quantum-us N (20000)  --phases LIST
 *   --probes N  --stall-us N
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
	long lost = 0, late = 0, deferred = 0, noirq = 0, early = 0, refused = 0;
	uint64_t max_lag = 0, start_sim = 0, start_host = 0, end_sim = 0, end_host = 0;
};

static std::vector<Phase> phases;
static size_t ph;		/* the current phase */

[[noreturn]] static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("ns3sim: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
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
	/* frames ns-3 sent, by id: their time */
	std::vector<uint64_t> sent_t;
	long nr_frames_in = 0, nr_dropped_boot = 0;
	/* the guest's last IPv4 frame: its stamp; the last frame handed to it: when */
	uint64_t last_out = 0, last_in = 0;
};

static Guest guests[2] = { Guest("A"), Guest("B") };
static bool done;
static long expect_probes;
static uint64_t last_ip_len[2];	/* IP length of the last frame from A and from B */

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

		if (p->GetSize() < h.GetSerializedSize())
			return;
		p->RemoveHeader(h);
		if (h.GetLengthType() <= 1500)
			return;		/* 802.3 length: not for us */
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
	}

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

private:
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
	if (id >= m_guest->sent_t.size())
		m_guest->sent_t.resize(id + 1);
	m_guest->sent_t[id] = t;
	return true;
}

static uint64_t host_ns()
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}

/* 2 delay + both frames' serialisation on the link (IP length + 2 bytes of PPP) */
static int64_t sim_rtt()
{
	return 2 * opt.delay_ns + (last_ip_len[0] + 2 + last_ip_len[1] + 2) * 8 * 1000000000ull /
	       opt.rate_bps;
}

/* After probe @seq: the next phase once this one has had its probes. */
static void next_phase(long seq)
{
	if (seq < opt.probes * (long)(ph + 1) || ph + 1 >= phases.size())
		return;
	phases[ph].end_sim = std::min(vmp_now(guests[0].v), vmp_now(guests[1].v));
	phases[ph].end_host = host_ns();
	ph++;
	phases[ph].start_sim = phases[ph - 1].end_sim;
	phases[ph].start_host = phases[ph - 1].end_host;
	printf("ns3sim: phase %s: %s stamps, %" PRIu64 " us of host time between rounds\n",
	       phases[ph].name.c_str(), phases[ph].boundary ? "quantum-boundary" : "vmpace's",
	       phases[ph].stall_us);
}

static void on_line(Guest &g, const std::string &l)
{
	long seq;
	long long prog, wire = 0;

	if (!l.compare(0, 18, "vmpace-guest-ready")) {
		g.ready = true;
		if (sscanf(l.c_str(), "vmpace-guest-ready ping=%ld", &seq) == 1 && seq != expect_probes)
			die("guest A sends %ld probes, %zu phases of %ld need vmpace.ping=%ld", seq,
			    phases.size(), opt.probes, expect_probes);
		printf("guest %s: %s\n", g.name, l.c_str());
	} else if (sscanf(l.c_str(), "vmpace-guest-rtt %ld %lld %lld", &seq, &prog, &wire) >= 2) {
		/* this probe's frames are the last ones each way */
		int64_t sim = sim_rtt();

		/*
		 * In simulated time: A's request stamped -> B got it -> B's reply
		 * stamped -> A got it.  Without B's turnaround that is the
		 * simulated round trip, plus how late the two stops were.
		 */
		int64_t net = guests[0].last_in - guests[0].last_out;
		int64_t turn = guests[1].last_out - guests[1].last_in;

		Phase &p = phases[ph];

		p.rtt_prog.push_back(prog);
		p.err_prog.push_back(prog - sim);
		p.err_net.push_back(net - turn - sim);
		if (wire > 0) {
			p.rtt_wire.push_back(wire);
			p.err_wire.push_back(wire - sim);
			p.guest_part.push_back(wire - net);
		}
		printf("%s %3ld: %9.1f us between A's NIC timestamps, %9.1f us for "
		       "A's program (simulated %.1f us); stamp to delivery %.1f us, B's "
		       "turnaround %.1f us\n", p.name.c_str(), seq, wire / 1e3, prog / 1e3, sim / 1e3, net / 1e3,
		       turn / 1e3);
		fflush(stdout);
		next_phase(seq);
	} else if (!l.compare(0, 17, "vmpace-guest-warm")) {
		printf("guest %s: %s (the path is up: the measured round trips follow)\n", g.name,
		       l.c_str());
	} else if (sscanf(l.c_str(), "vmpace-guest-rtt-lost %ld", &seq) == 1) {
		phases[ph].lost++;
		printf("guest %s: %s\n", g.name, l.c_str());
		next_phase(seq);
	} else if (!l.compare(0, 21, "vmpace-guest-udp-done")) {
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
			uint64_t t = (phases[ph].boundary ? vmp_now(g.v) : ev.t) + opt.access_ns;
			Time now = Simulator::Now();

			if (!network) {
				g.nr_dropped_boot++;
				break;
			}
			/* ev.t >= the previous report >= ns-3's time - a: never in the past */
			NS_ABORT_MSG_IF(NanoSeconds(t) < now, "guest " << g.name << ": frame at "
					<< t << " ns, ns-3 is at " << now.GetNanoSeconds() << " ns");
			if (ev.len >= 14 + 20 && (((const uint8_t *)ev.data)[12] << 8 |
						  ((const uint8_t *)ev.data)[13]) == 0x0800) {
				last_ip_len[&g - guests] = ((const uint8_t *)ev.data)[16] << 8 |
							    ((const uint8_t *)ev.data)[17];
				g.last_out = t - opt.access_ns;
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
			g.last_in = ev.t;
			if (ev.id < g.sent_t.size()) {
				if (ev.t < g.sent_t[ev.id])
					p.early++;
				else
					p.max_lag = std::max(p.max_lag, ev.t - g.sent_t[ev.id]);
			}
			break;
		}
		case VMP_EV_REJECTED:
			fprintf(stderr, "ns3sim: guest %s: vmpace refused frame %u: %s\n", g.name,
				ev.id, (const char *)ev.data);
			phases[ph].refused++;
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
	ok = (long)p.rtt_prog.size() == opt.probes && !p.lost &&
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
		{ NULL, 0, NULL, 0 }
	};
	std::vector<const char *> qemu[2];
	std::string list = "plain", name;
	uint64_t limit, horizon;
	int c, i, k, status;
	int64_t sim;
	size_t pos;
	bool ok;

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
	printf("ns3sim: phase %s: %s stamps, %" PRIu64 " us of host time between rounds\n",
	       phases[0].name.c_str(), phases[0].boundary ? "quantum-boundary" : "vmpace's",
	       phases[0].stall_us);

	/* the round trips, 10 s of simulated time per phase at most */
	phases[0].start_sim = horizon;
	phases[0].start_host = host_ns();
	for (limit = horizon + phases.size() * 10000000000ull; !done && now_min() < limit; ) {
		run_guests(horizon - opt.margin_ns, true);
		horizon = now_min() + opt.access_ns;
		Simulator::Stop(NanoSeconds(horizon) - Simulator::Now());
		Simulator::Run();
	}
	if (!done)
		fprintf(stderr, "ns3sim: guest A did not finish its round trips in 10 s of "
			"simulated time\n");
	phases[ph].end_sim = now_min();
	phases[ph].end_host = host_ns();
	for (Guest &g : guests) {
		if (vmp_close(g.v, 15000, &status))
			fprintf(stderr, "ns3sim: guest %s: %s\n", g.name, vmp_errmsg(g.v));
		unlink(g.dbg_path.c_str());
	}
	Simulator::Destroy();

	sim = sim_rtt();
	printf("ns3sim: simulated round trip %.1f us = 2 x %.1f us + serialisation of %" PRIu64
	       " + %" PRIu64 " bytes (the last probe) at %" PRIu64 " Mbit/s\n", sim / 1e3, opt.delay_ns / 1e3,
	       last_ip_len[0] + 2, last_ip_len[1] + 2, opt.rate_bps / 1000000);
	printf("ns3sim: frames from the guests: A %ld, B %ld (%ld, %ld while booting, dropped)\n",
	       guests[0].nr_frames_in, guests[1].nr_frames_in, guests[0].nr_dropped_boot,
	       guests[1].nr_dropped_boot);
	ok = done;
	for (const Phase &p : phases)
		ok &= report(p, sim);
	printf("ns3sim: %s\n", ok ? "PASS" : "FAILED");
	return ok ? 0 : 1;
}
