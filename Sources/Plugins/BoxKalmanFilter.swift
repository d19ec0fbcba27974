/// A constant-velocity Kalman filter over a box's centre and size: SORT's motion model, with DeepSORT's noise that
/// scales with the box, so a 10-pixel face and a 300-pixel car are followed alike.
///
/// State: centre x, centre y, width, height and the velocity of each (pixels per frame); measurement: the four
/// positions. Transition, measurement and noise never couple two coordinates, so the 8×8 covariance stays
/// block-diagonal and the filter is exactly four independent 2-state filters, one per coordinate.
struct BoxKalmanFilter: Sendable {
    /// Standard deviations per frame as fractions of the box's size along the axis (DeepSORT's 1/20 and 1/160).
    static let positionNoise = 1.0 / 20
    static let velocityNoise = 1.0 / 160

    /// One coordinate: position, velocity and their covariance [[pp, pv], [pv, vv]].
    struct Axis: Sendable {
        var position: Double
        var velocity: Double = 0
        var pp: Double
        var pv: Double = 0
        var vv: Double

        /// x ← F x, P ← F P Fᵀ + diag(qp, qv), with F = [[1, 1], [0, 1]].
        mutating func predict(qp: Double, qv: Double) {
            position += velocity
            pp += 2 * pv + vv + qp
            pv += vv
            vv += qv
        }

        /// Folds in a measured position of variance `r`: K = P Hᵀ / (H P Hᵀ + r), P ← (I − K H) P.
        mutating func update(_ z: Double, r: Double) {
            let s = pp + r
            let (kp, kv) = (pp / s, pv / s)
            let innovation = z - position
            position += kp * innovation
            velocity += kv * innovation
            vv -= kv * pv
            pv *= 1 - kp
            pp *= 1 - kp
        }
    }

    private(set) var cx: Axis
    private(set) var cy: Axis
    private(set) var width: Axis
    private(set) var height: Axis

    /// Starts at the box, at rest, with a velocity as uncertain as a box size per frame: the second detection all
    /// but sets the velocity (as SORT's large initial velocity variance does).
    init(_ box: Detection) {
        func axis(_ position: Float, size: Double) -> Axis {
            Axis(position: Double(position), pp: Self.square(2 * Self.positionNoise * size), vv: size * size)
        }
        let (w, h) = (Self.scale(box.width), Self.scale(box.height))
        cx = axis((box.x0 + box.x1) / 2, size: w)
        cy = axis((box.y0 + box.y1) / 2, size: h)
        width = axis(box.width, size: w)
        height = axis(box.height, size: h)
    }

    /// One frame ahead. A shrinking size that would reach zero stops shrinking (SORT does the same).
    mutating func predict() {
        if width.position + width.velocity <= 0 { width.velocity = 0 }
        if height.position + height.velocity <= 0 { height.velocity = 0 }
        let (w, h) = (Self.scale(width.position), Self.scale(height.position))
        let (qw, qh) = (Self.square(Self.positionNoise * w), Self.square(Self.positionNoise * h))
        let (vw, vh) = (Self.square(Self.velocityNoise * w), Self.square(Self.velocityNoise * h))
        cx.predict(qp: qw, qv: vw)
        width.predict(qp: qw, qv: vw)
        cy.predict(qp: qh, qv: vh)
        height.predict(qp: qh, qv: vh)
    }

    mutating func update(_ box: Detection) {
        let (rw, rh) = (
            Self.square(Self.positionNoise * Self.scale(width.position)),
            Self.square(Self.positionNoise * Self.scale(height.position))
        )
        cx.update(Double((box.x0 + box.x1) / 2), r: rw)
        width.update(Double(box.width), r: rw)
        cy.update(Double((box.y0 + box.y1) / 2), r: rh)
        height.update(Double(box.height), r: rh)
    }

    /// Left, top, right, bottom of the current estimate.
    var box: (x0: Float, y0: Float, x1: Float, y1: Float) {
        let (w, h) = (max(0, width.position), max(0, height.position))
        return (
            Float(cx.position - w / 2), Float(cy.position - h / 2), Float(cx.position + w / 2),
            Float(cy.position + h / 2)
        )
    }

    /// The size noise is taken relative to, at least a pixel so a degenerate box still has some.
    private static func scale<T: BinaryFloatingPoint>(_ size: T) -> Double { max(1, Double(size)) }
    private static func square(_ x: Double) -> Double { x * x }
}
