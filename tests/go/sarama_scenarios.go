// Sarama (Go; Debian's golang-github-shopify-sarama-dev, 1.22) against a real troupe
// broker; run by tests/python/test_sarama.py as
//
//	go run tests/go/sarama_scenarios.go <bootstrap> <topic> <group>
//
// in GOPATH mode (GO111MODULE=off GOPATH=/usr/share/gocode). Exits 0 when every check
// holds; otherwise prints what failed and exits 1.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_1_0_0
	c.ClientID = "troupe-sarama"
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Idempotent = true
	c.Producer.Retry.Max = 10
	c.Net.MaxOpenRequests = 1
	c.Producer.Compression = sarama.CompressionSnappy
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	// With Retention 0 this Sarama commits with OffsetCommit v1, which Kafka 4 removed
	// (KIP-896) and Troupe does not serve either (the connection is closed, as Kafka 4
	// does); a retention makes it use v2.
	c.Consumer.Offsets.Retention = 24 * time.Hour
	return c
}

type member struct {
	name       string
	mu         sync.Mutex
	read       map[int32][]int64
	claims     []int32
	generation int32
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	fmt.Printf("%s: generation %d, claims %v\n", m.name, s.GenerationID(), s.Claims())
	m.mu.Lock()
	m.generation = s.GenerationID()
	m.claims = nil
	for _, parts := range s.Claims() {
		m.claims = append(m.claims, parts...)
	}
	m.mu.Unlock()
	return nil
}
func (m *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		m.mu.Lock()
		m.read[msg.Partition] = append(m.read[msg.Partition], msg.Offset)
		m.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: sarama_scenarios <bootstrap> <topic> <group>")
	}
	bootstrap, topic, group := os.Args[1], os.Args[2], os.Args[3]
	addrs := []string{bootstrap}

	admin, err := sarama.NewClusterAdmin(addrs, config())
	if err != nil {
		fail("admin: %v", err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		fail("create topic: %v", err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err == nil {
		fail("creating the topic twice succeeded")
	}

	// Two group members split the partitions and read everything once.
	ctx, cancel := context.WithCancel(context.Background())
	members := []*member{
		{name: "a", read: map[int32][]int64{}},
		{name: "b", read: map[int32][]int64{}},
	}
	var wg sync.WaitGroup
	groups := []sarama.ConsumerGroup{}
	for _, m := range members {
		g, err := sarama.NewConsumerGroup(addrs, group, config())
		if err != nil {
			fail("consumer group: %v", err)
		}
		groups = append(groups, g)
		wg.Add(1)
		go func(m *member, g sarama.ConsumerGroup) {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
					fmt.Fprintf(os.Stderr, "%s: consume: %v\n", m.name, err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}(m, g)
		go func(g sarama.ConsumerGroup) {
			for err := range g.Errors() {
				fmt.Fprintf(os.Stderr, "group error: %v\n", err)
			}
		}(g)
	}
	// Both members hold partitions of the same generation, together all three.
	deadline := time.Now().Add(40 * time.Second)
	for {
		gens := map[int32]bool{}
		held := map[int32]bool{}
		owners := 0
		for _, m := range members {
			m.mu.Lock()
			gens[m.generation] = true
			if len(m.claims) > 0 {
				owners++
			}
			for _, p := range m.claims {
				held[p] = true
			}
			m.mu.Unlock()
		}
		if owners == 2 && len(gens) == 1 && len(held) == 3 {
			break
		}
		if time.Now().After(deadline) {
			fail("the two members did not split the partitions")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println("the group split the partitions")

	// Idempotent snappy producer, acks=all: offsets 0..99 on each partition.
	p, err := sarama.NewSyncProducer(addrs, config())
	if err != nil {
		fail("producer: %v", err)
	}
	next := map[int32]int64{}
	for i := 0; i < 300; i++ {
		part, off, err := p.SendMessage(&sarama.ProducerMessage{
			Topic:     topic,
			Partition: int32(i % 3),
			Key:       sarama.StringEncoder(fmt.Sprintf("k%d", i)),
			Value:     sarama.StringEncoder(fmt.Sprintf("v%d", i)),
		})
		if err != nil {
			fail("send %d: %v", i, err)
		}
		if off != next[part] {
			fail("send %d: offset %d on partition %d, expected %d", i, off, part, next[part])
		}
		next[part]++
	}
	p.Close()
	fmt.Println("produced 300 messages")

	total := func() (int, map[int32][]int64, int) {
		all := map[int32][]int64{}
		owners := 0
		for _, m := range members {
			m.mu.Lock()
			if len(m.read) > 0 {
				owners++
			}
			for part, offs := range m.read {
				all[part] = append(all[part], offs...)
			}
			m.mu.Unlock()
		}
		// Distinct offsets: a partition that moved may be read again from its last commit.
		n := 0
		for _, offs := range all {
			seen := map[int64]bool{}
			for _, o := range offs {
				seen[o] = true
			}
			n += len(seen)
		}
		return n, all, owners
	}
	deadline = time.Now().Add(40 * time.Second)
	for {
		n, _, _ := total()
		if n >= 300 {
			break
		}
		if time.Now().After(deadline) {
			fail("group read %d of 300 messages", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // auto commit every 100 ms
	cancel()
	wg.Wait()
	for _, g := range groups {
		g.Close()
	}
	_, all, _ := total()
	for part := int32(0); part < 3; part++ {
		// At least once: a partition that moved may be read again from its last commit.
		seen := map[int64]bool{}
		for _, o := range all[part] {
			seen[o] = true
		}
		distinct := []int64{}
		for o := range seen {
			distinct = append(distinct, o)
		}
		sort.Slice(distinct, func(i, j int) bool { return distinct[i] < distinct[j] })
		if len(distinct) != 100 || distinct[0] != 0 || distinct[99] != 99 {
			fail("partition %d: %d distinct offsets of %d read (%v...)", part, len(distinct), len(all[part]), distinct[:min(5, len(distinct))])
		}
	}
	fmt.Println("group read all 300 messages")

	// Committed offsets, through the admin client (OffsetFetch).
	res, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		fail("list group offsets: %v", err)
	}
	for part := int32(0); part < 3; part++ {
		b := res.GetBlock(topic, part)
		if b == nil || b.Err != sarama.ErrNoError || b.Offset != 100 {
			fail("committed offset of partition %d: %+v", part, b)
		}
	}
	fmt.Println("committed offsets 100/100/100")

	// A plain partition consumer from the oldest offset.
	c, err := sarama.NewConsumer(addrs, config())
	if err != nil {
		fail("consumer: %v", err)
	}
	pc, err := c.ConsumePartition(topic, 1, sarama.OffsetOldest)
	if err != nil {
		fail("consume partition: %v", err)
	}
	for i := 0; i < 100; i++ {
		select {
		case msg := <-pc.Messages():
			want := fmt.Sprintf("v%d", 3*i+1)
			if msg.Offset != int64(i) || string(msg.Value) != want {
				fail("partition 1 offset %d: %d %q, expected %q", i, msg.Offset, msg.Value, want)
			}
		case err := <-pc.Errors():
			fail("partition consumer: %v", err)
		case <-time.After(15 * time.Second):
			fail("partition consumer: nothing after %d messages", i)
		}
	}
	pc.Close()
	c.Close()

	if err := admin.DeleteTopic(topic); err != nil {
		fail("delete topic: %v", err)
	}
	admin.Close()
	fmt.Println("scenario: ok")
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
