// The bench's driver order across repetitions: a sample can inherit state from the one run just
// before it, so every driver must take every place, and none may always follow the same other one.
import { describe, expect, it } from 'vitest'
import { driverOrder } from '../../bench/runner.js'

const DRIVERS = ['plain', 'kernel', 'fuse-overlayfs', 'layerfs']

/** The driver run just before `driver` in each repetition's order (undefined where it runs first). */
function predecessors(orders: string[][], driver: string): Array<string | undefined> {
  return orders.map((order) => order[order.indexOf(driver) - 1])
}

describe('driverOrder', () => {
  it('runs the first order backwards in the second repetition', () => {
    expect(driverOrder(DRIVERS, 1)).toEqual(['plain', 'kernel', 'fuse-overlayfs', 'layerfs'])
    expect(driverOrder(DRIVERS, 2)).toEqual(['layerfs', 'fuse-overlayfs', 'kernel', 'plain'])
  })

  it('puts every driver in every place, equally often, over twice as many repetitions as drivers', () => {
    const orders = Array.from({ length: 2 * DRIVERS.length }, (_, i) => driverOrder(DRIVERS, i + 1))
    for (const order of orders) expect([...order].sort()).toEqual([...DRIVERS].sort())
    for (const driver of DRIVERS) {
      const places = orders.map((order) => order.indexOf(driver))
      for (let place = 0; place < DRIVERS.length; place++) expect(places.filter((p) => p === place)).toHaveLength(2)
    }
  })

  it('never has a driver follow the same other one in both of two repetitions', () => {
    const orders = [driverOrder(DRIVERS, 1), driverOrder(DRIVERS, 2)]
    for (const driver of DRIVERS) {
      const before = predecessors(orders, driver).filter((d) => d !== undefined)
      expect(new Set(before).size).toBe(before.length)
    }
    // The CI gate's two drivers: each runs first in two of four repetitions.
    expect([1, 2, 3, 4].map((rep) => driverOrder(['fuse-overlayfs', 'layerfs'], rep)[0])).toEqual(['fuse-overlayfs', 'layerfs', 'layerfs', 'fuse-overlayfs'])
  })
})
