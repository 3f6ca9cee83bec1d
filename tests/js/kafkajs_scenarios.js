// KafkaJS against a real troupe broker; run by tests/python/test_kafkajs.py as
//   node tests/js/kafkajs_scenarios.js <scenario> <bootstrap> <topic> <group>
// Exits 0 when every check holds; otherwise prints what failed and exits 1.
'use strict'

const assert = require('node:assert/strict')
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const [scenario, bootstrap, topic, groupId] = process.argv.slice(2)
if (!scenario || !bootstrap || !topic || !groupId) {
  console.error('usage: kafkajs_scenarios.js <scenario> <bootstrap> <topic> <group>')
  process.exit(2)
}

const kafka = new Kafka({
  clientId: 'troupe-kafkajs',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  retry: { initialRetryTime: 100 },
})

const log = (...args) => console.log(new Date().toISOString(), ...args)

async function waitFor (what, timeoutMs, predicate) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await predicate()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

function groupConsumer () {
  return kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 200,
  })
}

// A consumer that records what it is assigned and what it reads.
async function startMember (name, seen) {
  const c = groupConsumer()
  const member = { name, c, assigned: null, read: [] }
  c.on(c.events.GROUP_JOIN, e => {
    member.assigned = (e.payload.memberAssignment[topic] || []).slice().sort()
    log(`${name} joined generation, assigned ${JSON.stringify(member.assigned)}`)
  })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  await c.run({
    autoCommitInterval: 100,
    eachMessage: async ({ partition, message }) => {
      const rec = { partition, offset: Number(message.offset), key: message.key && message.key.toString(), value: message.value.toString() }
      member.read.push(rec)
      seen.push(rec)
    },
  })
  return member
}

// Admin, idempotent gzip producer, a two-member group that splits the partitions,
// committed offsets, and a restarted member resuming where the group left off.
async function groupScenario () {
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true })
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(md.topics[0].partitions.length, 3, 'partition count')

    const seen = []
    const a = await startMember('a', seen)
    const b = await startMember('b', seen)
    await waitFor('both members to hold disjoint assignments covering partitions 0-2', 30000, () => {
      if (!a.assigned || !b.assigned || a.assigned.length === 0 || b.assigned.length === 0) return false
      const all = [...a.assigned, ...b.assigned].sort()
      return JSON.stringify(all) === '[0,1,2]'
    })

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const sent = []
    for (let batch = 0; batch < 10; batch++) {
      const messages = []
      for (let i = 0; i < 30; i++) {
        const n = batch * 30 + i
        messages.push({ key: `k${n % 7}`, value: `v${n}`, partition: n % 3 })
      }
      const res = await producer.send({
        topic,
        acks: -1,
        compression: batch % 2 ? CompressionTypes.GZIP : CompressionTypes.None,
        messages,
      })
      sent.push(...res)
    }
    await producer.disconnect()
    log(`produced 300 messages in 10 sends: ${JSON.stringify(sent.slice(0, 3))} ...`)

    await waitFor('the group to read all 300 messages', 30000, () => seen.length >= 300)
    // Each partition read in order, once, by the member that owns it.
    for (const m of [a, b]) {
      for (const rec of m.read) {
        assert.ok(m.assigned.includes(rec.partition), `${m.name} read partition ${rec.partition} it does not own`)
      }
    }
    for (let p = 0; p < 3; p++) {
      const values = seen.filter(r => r.partition === p).map(r => r.value)
      const expected = []
      for (let n = p; n < 300; n += 3) expected.push(`v${n}`)
      assert.deepEqual(values, expected, `partition ${p} contents and order`)
      assert.deepEqual(seen.filter(r => r.partition === p).map(r => r.offset), [...Array(100).keys()], `partition ${p} offsets`)
    }

    // Auto commit (every 100 ms, and on disconnect) persists the group's position.
    await a.c.disconnect()
    await b.c.disconnect()
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
    const byPartition = Object.fromEntries(committed[0].partitions.map(p => [p.partition, p.offset]))
    assert.deepEqual(byPartition, { 0: '100', 1: '100', 2: '100' }, 'committed offsets')

    const groups = await admin.describeGroups([groupId])
    assert.equal(groups.groups[0].state, 'Empty', 'group state after both left')

    // A new member resumes at the committed offsets: it reads only what comes after.
    const producer2 = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer2.connect()
    await producer2.send({ topic, acks: -1, messages: [0, 1, 2].map(p => ({ value: `late${p}`, partition: p })) })
    await producer2.disconnect()
    const later = []
    const c = await startMember('c', later)
    await waitFor('the resumed member to read the 3 late messages', 30000, () => later.length >= 3)
    await new Promise(resolve => setTimeout(resolve, 500))
    assert.deepEqual(later.map(r => r.value).sort(), ['late0', 'late1', 'late2'], 'resumed member reads only new messages')
    assert.deepEqual(later.map(r => r.offset), [100, 100, 100], 'offsets of the late messages')
    await c.c.disconnect()

    // Offsets by time and end offsets through the admin client (ListOffsets).
    const ends = await admin.fetchTopicOffsets(topic)
    assert.deepEqual(ends.map(o => [o.partition, o.high, o.low]).sort(), [[0, '101', '0'], [1, '101', '0'], [2, '101', '0']], 'end offsets')

    await admin.deleteGroups([groupId])
    await admin.deleteTopics({ topics: [topic] })
    const left = await admin.listTopics()
    assert.ok(!left.includes(topic), 'topic deleted')
  } finally {
    await admin.disconnect()
  }
}

// Topic configs (DescribeConfigs, AlterConfigs), CreatePartitions, DeleteRecords and
// their errors, as KafkaJS's admin client issues them.
async function adminScenario () {
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
      waitForLeaders: true,
    })
    await assert.rejects(
      admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], validateOnly: false }).then(created => {
        if (!created) throw new Error('TOPIC_ALREADY_EXISTS: createTopics returned false')
      }),
      /already exists|TOPIC_ALREADY_EXISTS/i, 'second create of the same topic')

    const describe = async () => {
      const res = await admin.describeConfigs({ resources: [{ type: 2, name: topic, configNames: ['retention.ms', 'cleanup.policy'] }] })
      return Object.fromEntries(res.resources[0].configEntries.map(e => [e.configName, e.configValue]))
    }
    assert.deepEqual(await describe(), { 'retention.ms': '3600000', 'cleanup.policy': 'delete' }, 'configs after create')
    await admin.alterConfigs({ resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }] })
    assert.equal((await describe())['retention.ms'], '7200000', 'retention.ms after alterConfigs')
    await assert.rejects(
      admin.alterConfigs({ resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: 'soon' }] }] }),
      /INVALID_CONFIG|invalid/i, 'a non-numeric retention.ms is refused')

    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(md.topics[0].partitions.length, 4, 'partitions after createPartitions')

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    await producer.send({ topic, acks: -1, messages: [...Array(10).keys()].map(i => ({ value: `r${i}`, partition: 3 })) })
    await producer.disconnect()
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 3, offset: '4' }] })
    const offsets = await admin.fetchTopicOffsets(topic)
    const p3 = offsets.find(o => o.partition === 3)
    assert.deepEqual([p3.low, p3.high], ['4', '10'], 'log start and end after deleteTopicRecords')

    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const read = []
    await consumer.run({ eachMessage: async ({ partition, message }) => { read.push([partition, Number(message.offset), message.value.toString()]) } })
    await waitFor('the 6 records left after deleteTopicRecords', 30000, () => read.length >= 6)
    assert.deepEqual(read, [4, 5, 6, 7, 8, 9].map(o => [3, o, `r${o}`]), 'records from the new log start')
    await consumer.disconnect()
  } finally {
    await admin.disconnect()
  }
}

const scenarios = { group: groupScenario, admin: adminScenario }

async function main () {
  const run = scenarios[scenario]
  if (!run) throw new Error(`unknown scenario ${scenario}`)
  const t0 = Date.now()
  await run()
  log(`scenario ${scenario}: ok in ${Date.now() - t0} ms`)
}

main().then(() => process.exit(0), err => {
  console.error(`scenario ${scenario} FAILED:`, err && err.stack ? err.stack : err)
  process.exit(1)
})
