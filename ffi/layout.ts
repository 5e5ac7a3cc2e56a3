// Generated from shim/vio4wd_shim.h by scripts/gen_layout.ts (`deno task layout`): do not edit.

/** The header's numeric `#define VIO4WD_*` constants, without the prefix. */
export const SHIM_CONSTANTS = {
  SHIM_ABI: 5,
  MAX_RELAYS: 64,
  MAX_WORKERS: 64,
  MAX_QUEUE_PAIRS: 32,
  BURST: 32,
  SOCK_CLIENT: 1,
  SOCK_MRGBUF: 2,
  SOCK_TSO: 4,
  STAGE_OTHER: 0,
  STAGE_PROBE: 1,
  STAGE_INFO: 2,
  STAGE_POOL: 3,
  STAGE_CONFIGURE: 4,
  STAGE_RXQ: 5,
  STAGE_TXQ: 6,
  STAGE_START: 7,
  STAGE_BOND: 8,
  STAGE_MEMBER: 9,
  STATE_SOCKET: 1,
  STATE_VM: 2,
  STATE_VF: 4,
  STATE_VF_LINK: 8,
  STATE_VF_RUNNING: 16,
  INIT_VF_TSO: 1,
  MAX_BOND_MEMBERS: 8,
} as const;

/** The header's enums. */
export const SHIM_ENUMS = {
  vio4wd_step: {
    VIO4WD_STEP_VF_RX: 0,
    VIO4WD_STEP_VM_ENQUEUE: 1,
    VIO4WD_STEP_MBUF_FREE: 2,
    VIO4WD_STEP_VM_DEQUEUE: 3,
    VIO4WD_STEP_VF_TX: 4,
    VIO4WD_STEP_EMPTY_POLL: 5,
    VIO4WD_STEPS: 6,
  },
  vio4wd_event_type: {
    VIO4WD_EV_VM_CONNECTED: 1,
    VIO4WD_EV_VM_DISCONNECTED: 2,
    VIO4WD_EV_VRING_STATE: 3,
    VIO4WD_EV_VM_REJECTED: 4,
    VIO4WD_EV_LIVE_MIGRATION: 5,
    VIO4WD_EV_BOND_FAILOVER: 6,
    VIO4WD_EV_VF_FAILED: 7,
    VIO4WD_EV_VF_RESET: 8,
    VIO4WD_EV_VF_REMOVED: 9,
  },
} as const;

/** The header's structs: size, alignment, and each field's C type, byte offset, element size and count. */
export const SHIM_STRUCTS = {
  vio4wd_dir_stats: {
    size: 64,
    align: 64,
    fields: {
      rx_pkts: { type: "uint64_t", offset: 0, size: 8, count: 1 },
      rx_bytes: { type: "uint64_t", offset: 8, size: 8, count: 1 },
      tx_pkts: { type: "uint64_t", offset: 16, size: 8, count: 1 },
      tx_bytes: { type: "uint64_t", offset: 24, size: 8, count: 1 },
      drop_full_pkts: { type: "uint64_t", offset: 32, size: 8, count: 1 },
      drop_full_bytes: { type: "uint64_t", offset: 40, size: 8, count: 1 },
      drop_unavail_pkts: { type: "uint64_t", offset: 48, size: 8, count: 1 },
      drop_unavail_bytes: { type: "uint64_t", offset: 56, size: 8, count: 1 },
    },
  },
  vio4wd_relay_stats: {
    size: 128,
    align: 64,
    fields: {
      vf_to_vm: { type: "struct vio4wd_dir_stats", offset: 0, size: 64, count: 1 },
      vm_to_vf: { type: "struct vio4wd_dir_stats", offset: 64, size: 64, count: 1 },
    },
  },
  vio4wd_worker_stats: {
    size: 128,
    align: 64,
    fields: {
      passes: { type: "uint64_t", offset: 0, size: 8, count: 1 },
      busy_passes: { type: "uint64_t", offset: 8, size: 8, count: 1 },
      lcore: { type: "uint64_t", offset: 16, size: 8, count: 1 },
      busy_cycles: { type: "uint64_t", offset: 24, size: 8, count: 1 },
      idle_cycles: { type: "uint64_t", offset: 32, size: 8, count: 1 },
      rx_pkts: { type: "uint64_t", offset: 40, size: 8, count: 1 },
      bursts: { type: "uint64_t", offset: 48, size: 8, count: 1 },
      long_passes: { type: "uint64_t", offset: 56, size: 8, count: 1 },
      step_cycles: { type: "uint64_t", offset: 64, size: 8, count: 8 },
    },
  },
  vio4wd_shared: {
    size: 16448,
    align: 64,
    fields: {
      n_workers: { type: "uint32_t", offset: 0, size: 4, count: 1 },
      pad0: { type: "uint32_t", offset: 4, size: 4, count: 1 },
      event_overflows: { type: "uint64_t", offset: 8, size: 8, count: 1 },
      tsc_hz: { type: "uint64_t", offset: 16, size: 8, count: 1 },
      pad1: { type: "uint64_t", offset: 24, size: 8, count: 5 },
      relays: { type: "struct vio4wd_relay_stats", offset: 64, size: 128, count: 64 },
      workers: { type: "struct vio4wd_worker_stats", offset: 8256, size: 128, count: 64 },
    },
  },
  vio4wd_event: {
    size: 24,
    align: 4,
    fields: {
      type: { type: "uint32_t", offset: 0, size: 4, count: 1 },
      relay: { type: "uint32_t", offset: 4, size: 4, count: 1 },
      value: { type: "int32_t", offset: 8, size: 4, count: 1 },
      detail: { type: "uint32_t", offset: 12, size: 4, count: 1 },
      numa_node: { type: "int32_t", offset: 16, size: 4, count: 1 },
      pad: { type: "uint32_t", offset: 20, size: 4, count: 1 },
    },
  },
  vio4wd_limits: {
    size: 32,
    align: 4,
    fields: {
      abi: { type: "uint32_t", offset: 0, size: 4, count: 1 },
      max_relays: { type: "uint32_t", offset: 4, size: 4, count: 1 },
      max_workers: { type: "uint32_t", offset: 8, size: 4, count: 1 },
      max_queue_pairs: { type: "uint32_t", offset: 12, size: 4, count: 1 },
      max_bond_members: { type: "uint32_t", offset: 16, size: 4, count: 1 },
      max_ports: { type: "uint32_t", offset: 20, size: 4, count: 1 },
      event_queue_cap: { type: "uint32_t", offset: 24, size: 4, count: 1 },
      pool_mbufs: { type: "uint32_t", offset: 28, size: 4, count: 1 },
    },
  },
  vio4wd_relay_report: {
    size: 48,
    align: 8,
    fields: {
      state: { type: "uint32_t", offset: 0, size: 4, count: 1 },
      queue_pairs: { type: "uint32_t", offset: 4, size: 4, count: 1 },
      rxq_mask: { type: "uint32_t", offset: 8, size: 4, count: 1 },
      txq_mask: { type: "uint32_t", offset: 12, size: 4, count: 1 },
      numa_node: { type: "int32_t", offset: 16, size: 4, count: 1 },
      mbufs_in_use: { type: "int32_t", offset: 20, size: 4, count: 1 },
      cpu: { type: "int32_t", offset: 24, size: 4, count: 2 },
      vf_rx_missed: { type: "uint64_t", offset: 32, size: 8, count: 1 },
      vf_rx_nombuf: { type: "uint64_t", offset: 40, size: 8, count: 1 },
    },
  },
} as const;
